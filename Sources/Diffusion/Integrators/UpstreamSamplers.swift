import Foundation
import Tensor

// DiT's and DiT-MoE's own samplers (upstream `diffusion/` and `rectified_flow.py`) on the denoiser seam, in the VE
// view y = x_t/√ᾱ_t with σ_t = √(1/ᾱ_t − 1) (model units; for the digits and SD latents that is the model's own
// [−1, 1] pixel or scaled-latent units). On a respaced grid τ_{N−1} > … > τ_0 with σ_i = σ(τ_i), σ_{−1} = 0, and
// D = D(y; σ_i) the denoiser's x̂₀:
//
//   DDPM ancestral (p_sample):  y ← D + (σ_{i−1}²/σ_i²)·(y − D) + √v·z,   no noise at i = 0
//       fixed variance v = σ_{i−1}²·(1 − σ_{i−1}²/σ_i²)            (= σ̃²_i/ᾱ_{i−1}, the posterior variance)
//       learned range  v = exp(f·log β'_i + (1 − f)·log σ̃²_i,clipped)/ᾱ_{i−1},  f = (v_model + 1)/2
//   DDIM (η = 0):               y ← D + σ_{i−1}·(y − D)/σ_i
//   RF Euler (S steps):         the same update on σ = t/(1 − t), t_i = i/S, i = S … 1, then y ← D at t = 0
//
// Dividing upstream's VP updates by √ᾱ_{i−1} gives exactly these (μ = c₁x̂₀ + c₂x_t becomes D + (σ'²/σ²)(y − D)),
// and RF's Euler step z ← z − v/S holds x̂₀ and ε̂ fixed exactly as DDIM's does. The chain starts from pure noise:
// VP x_T ~ N(0, I), i.e. y = √(1 + σ_max²)·z. One model call per step: NFE = N (RF: S).

/// A denoiser that also predicts DDPM's learned-range variance: per element the interpolation fraction
/// f = (v + 1)/2 between log β' (f = 1) and the clipped log posterior variance (f = 0), v the model's extra channels.
public protocol LearnedVarianceDenoiser: Denoiser {
    /// False when this instance's model has no variance channels (then the method below is never called).
    var predictsVariance: Bool { get }
    func denoise(_ x: UnsafePointer<Float>, sigma: UnsafePointer<Double>, batch: Int, into out: UnsafeMutablePointer<Float>,
                 varianceFraction: UnsafeMutablePointer<Float>)
}

extension CountingDenoiser {
    /// `denoise`, also writing the learned variance fraction when the model predicts one (returns false otherwise,
    /// leaving `varianceFraction` untouched). Counts one call either way.
    public func denoise(_ x: UnsafePointer<Float>, sigma: UnsafePointer<Double>, batch: Int,
                        into out: UnsafeMutablePointer<Float>, varianceFraction: UnsafeMutablePointer<Float>) -> Bool {
        guard let learned = model as? LearnedVarianceDenoiser, learned.predictsVariance else {
            denoise(x, sigma: sigma, batch: batch, into: out)
            return false
        }
        countCall(batch: batch)
        learned.denoise(x, sigma: sigma, batch: batch, into: out, varianceFraction: varianceFraction)
        return true
    }
}

/// The upstream DiT samplers.
public enum UpstreamSampler: Sendable, Equatable {
    /// Ancestral DDPM on N respaced steps (upstream `p_sample_loop`, 250 steps for FID); learned-range variance
    /// when the denoiser predicts it, else the posterior variance.
    case ddpm(steps: Int)
    /// DDIM with η = 0 on N respaced steps (`ddim_sample_loop`).
    case ddim(steps: Int)
    /// Rectified-flow Euler with S uniform steps in t (`sample_with_xps`, S = 50 upstream).
    case rectifiedFlowEuler(steps: Int)

    public var name: String {
        switch self {
        case .ddpm(let n): return "ddpm\(n)"
        case .ddim(let n): return "ddim\(n)"
        case .rectifiedFlowEuler(let n): return "rf\(n)"
        }
    }

    public var steps: Int {
        switch self { case .ddpm(let n), .ddim(let n), .rectifiedFlowEuler(let n): return n }
    }

    /// Noise levels σ_{N−1} > … > σ_0 the model is called at (model units).
    public var sigmas: [Double] {
        switch self {
        case .ddpm(let n), .ddim(let n):
            let s = DDPMSchedule(steps: n)
            return (0..<s.timesteps.count).reversed().map { (1 / s.abar($0) - 1).squareRoot() }
        case .rectifiedFlowEuler(let n):
            // t = 1 itself maps to σ = ∞; the first call uses t = 1 − 1e-6 (σ ≈ 1e6), which changes the model's
            // time input by 1e-6 and its state by a factor 1 − 1e-6.
            return stride(from: n, through: 1, by: -1).map { i -> Double in
                let t = min(Double(i) / Double(n), 1 - 1e-6)
                return t / (1 - t)
            }
        }
    }

    /// The model-units state to start from, given standard normal `z`: √(1 + σ_max²)·z (VP x_T = z); for RF the
    /// state z itself scaled to the VE view, (1 + σ)·z.
    public func startScale() -> Double {
        let s = sigmas[0]
        switch self {
        case .ddpm, .ddim: return (1 + s * s).squareRoot()
        case .rectifiedFlowEuler: return 1 + s
        }
    }

    /// Draws the start state into `x` (`[batch, d]`) from `context.noise` and runs the sampler in place. The result
    /// is the final x̂₀ (model units).
    public func sample(_ x: UnsafeMutablePointer<Float>, batch: Int, context c: SamplerContext) -> IntegratorReport {
        let d = c.dimension, count = batch * d
        c.noise.fillNormal(x, count: count)
        let scale = Float(startScale())
        for k in 0..<count { x[k] *= scale }
        return integrate(x, batch: batch, context: c)
    }

    /// Runs the sampler on a start state already in `x`.
    public func integrate(_ x: UnsafeMutablePointer<Float>, batch: Int, context c: SamplerContext) -> IntegratorReport {
        let d = c.dimension, count = batch * d
        let grid = sigmas
        let den = FloatBuffer(count), fraction = FloatBuffer(count), sig = DoubleBuffer(batch), z = FloatBuffer(count)
        let calls0 = c.denoiser.calls
        let schedule: DDPMSchedule? = { if case .ddpm(let n) = self { return DDPMSchedule(steps: n) } else { return nil } }()
        for (k, s) in grid.enumerated() {
            for b in 0..<batch { sig.p[b] = s }
            let next = k + 1 < grid.count ? grid[k + 1] : 0
            switch self {
            case .ddpm:
                let learned = c.denoiser.denoise(x, sigma: sig.p, batch: batch, into: den.p, varianceFraction: fraction.p)
                let ratio = Float(next * next / (s * s))
                for i in 0..<count { x[i] = den.p[i] + ratio * (x[i] - den.p[i]) }
                if next > 0 {
                    let sch = schedule!, i = sch.timesteps.count - 1 - k
                    let abPrev = sch.abar(i - 1)
                    c.noise.fillNormal(z.p, count: count)
                    if learned {
                        let logMax = log(sch.betaPrime(i)), logMin = sch.logPosteriorVarianceClipped(i), logAb = log(abPrev)
                        for j in 0..<count {
                            let f = Double(fraction.p[j])
                            x[j] += Float(exp(0.5 * (f * logMax + (1 - f) * logMin - logAb))) * z.p[j]
                        }
                    } else {
                        let sd = Float((next * next * (1 - next * next / (s * s))).squareRoot())
                        for j in 0..<count { x[j] += sd * z.p[j] }
                    }
                }
            case .ddim, .rectifiedFlowEuler:
                c.denoiser.denoise(x, sigma: sig.p, batch: batch, into: den.p)
                let ratio = Float(next / s)
                for i in 0..<count { x[i] = den.p[i] + ratio * (x[i] - den.p[i]) }
            }
        }
        return IntegratorReport(nfe: c.denoiser.calls - calls0)
    }
}
