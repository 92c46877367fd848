// DiT-MoE's own sampling loops (spec ditmoe §4), used to drive the engine through a realistic denoising run
// (load-balance profiling). Equations are those of upstream `diffusion/` and `rectified_flow.py`:
//
//   DDPM (§4.1): 1000 linear betas 1e-4…0.02 (Float64); respacing "N" keeps τ = round-half-even of an accumulated
//   stride 999/(N−1); β'_i = 1 − ᾱ(τ_i)/ᾱ(τ_{i−1}); the model is called with t = τ_i. Ancestral step with learned
//   range variance: x0 = √(1/ᾱ_i)·x − √(1/ᾱ_i − 1)·ε; log σ² = f·log β'_i + (1−f)·log σ̃²_clip,i with f = (v+1)/2;
//   μ = β'_i√ᾱ_{i−1}/(1−ᾱ_i)·x0 + (1−ᾱ_{i−1})√(1−β'_i)/(1−ᾱ_i)·x; x ← μ + [i>0]·σ·z. No clipping.
//   DDIM (η = 0): x ← x0·√ᾱ_{i−1} + √(1−ᾱ_{i−1})·ε̂, ε̂ recomputed from x0.
//   CFG: `forward_with_cfg` on [x, x] with labels [y, null]; the first half's output drives the update.
//
//   Rectified flow (§4.2): z starts at ε; for i = S…1, t_i = i/S, v = v_u + s·(v_c − v_u) on all latent
//   channels, z ← z − v/S. The model is never called at t = 0.
//
// Latents are [n, C, H, W] in the VAE's scaled latent units (×0.18215), float32.
import DiT
import Diffusion
import Foundation

/// The model call: (x [B,C,H,W], t [B], y [B], batch, out [B,C_out,H,W]); `cfgScale` non-nil means the batch is
/// [cond, uncond] and the call is the CFG forward.
public typealias DiTCall = (_ x: UnsafePointer<Float>, _ t: UnsafePointer<Float>, _ y: UnsafePointer<Int32>, _ batch: Int,
                            _ cfgScale: Float?, _ out: UnsafeMutablePointer<Float>) throws -> Void

public enum DiTSamplingError: Error, CustomStringConvertible {
    case nonFinite(step: Int)
    public var description: String {
        switch self { case let .nonFinite(step): return "sampling produced a non-finite latent at step \(step) (wrong time units for this model?)" }
    }
}

public struct DiTSamplerRun {
    public let sampler: DiTSampler
    public let steps: Int
    public let cfgScale: Float
    public let channels: Int, side: Int, outChannels: Int
    public let nullClass: Int

    public init(sampler: DiTSampler, steps: Int, cfgScale: Float, channels: Int, side: Int, outChannels: Int, nullClass: Int) {
        self.sampler = sampler; self.steps = steps; self.cfgScale = cfgScale; self.channels = channels
        self.side = side; self.outChannels = outChannels; self.nullClass = nullClass
    }

    /// Samples `labels.count` latents. `onStep(k)` is called before the k-th model call (k = 0 is the noisiest),
    /// so an observer can attribute routing to denoising steps. Returns the latents [n, C, H, W].
    public func sample(labels: [Int], seed: UInt64, model: DiTCall, onStep: (Int) -> Void = { _ in }) throws -> [Float] {
        let n = labels.count, image = channels * side * side, outImage = outChannels * side * side
        var rng = GaussianStream(seed: seed)
        var x = (0..<(n * image)).map { _ in Float(rng.next()) }
        var batchX = [Float](repeating: 0, count: 2 * n * image)
        var out = [Float](repeating: 0, count: 2 * n * outImage)
        let y = (labels + [Int](repeating: nullClass, count: n)).map { Int32($0) }
        var t = [Float](repeating: 0, count: 2 * n)

        func call(_ time: Float) throws {
            for i in 0..<n { for j in 0..<image { batchX[i * image + j] = x[i * image + j]; batchX[(n + i) * image + j] = x[i * image + j] } }
            for i in 0..<(2 * n) { t[i] = time }
            let cfg: Float? = sampler == .rectifiedFlow ? nil : cfgScale
            try model(batchX, t, y, 2 * n, cfg, &out)
        }

        switch sampler {
        case .ddpm, .ddim:
            let s = DDPMSchedule(steps: steps)
            for (k, i) in (0..<s.timesteps.count).reversed().enumerated() {
                onStep(k)
                try call(Float(s.timesteps[i]))
                let ab = s.abar(i), abPrev = s.abar(i - 1), bp = s.betaPrime(i)
                let c1 = bp * abPrev.squareRoot() / (1 - ab), c2 = (1 - abPrev) * (1 - bp).squareRoot() / (1 - ab)
                let logMin = s.logPosteriorVarianceClipped(i), logMax = log(bp)
                for b in 0..<n {
                    for j in 0..<image {
                        let xv = Double(x[b * image + j])
                        let eps = Double(out[b * outImage + j])
                        let x0 = (1 / ab).squareRoot() * xv - (1 / ab - 1).squareRoot() * eps
                        if sampler == .ddim {
                            let epsHat = ((1 / ab).squareRoot() * xv - x0) / (1 / ab - 1).squareRoot()
                            x[b * image + j] = Float(x0 * abPrev.squareRoot() + (1 - abPrev).squareRoot() * epsHat)
                        } else {
                            let v = Double(out[b * outImage + image + j])
                            let f = (v + 1) / 2
                            let logVar = f * logMax + (1 - f) * logMin
                            let noise = i > 0 ? exp(0.5 * logVar) * rng.next() : 0
                            x[b * image + j] = Float(c1 * x0 + c2 * xv + noise)
                        }
                    }
                }
                if x.contains(where: { !$0.isFinite }) { throw DiTSamplingError.nonFinite(step: k) }
            }
        case .rectifiedFlow:
            for (k, i) in stride(from: steps, through: 1, by: -1).enumerated() {
                onStep(k)
                try call(Float(i) / Float(steps))
                for b in 0..<n {
                    for j in 0..<image {
                        let vc = out[b * outImage + j], vu = out[(n + b) * outImage + j]
                        x[b * image + j] -= (vu + cfgScale * (vc - vu)) / Float(steps)
                    }
                }
                if x.contains(where: { !$0.isFinite }) { throw DiTSamplingError.nonFinite(step: k) }
            }
        }
        return x
    }
}

/// Standard normal draws (Box–Muller over SplitMix64), reproducible from a seed.
public struct GaussianStream {
    private var bits: SplitMix64
    private var spare: Double?
    public init(seed: UInt64) { bits = SplitMix64(seed: seed ^ 0x5DEE_CE66_D1CE_4E5B) }
    /// Uniform in (0, 1).
    public mutating func uniform() -> Double { (Double(bits.next() >> 11) + 0.5) / 9_007_199_254_740_992.0 }
    public mutating func next() -> Double {
        if let s = spare { spare = nil; return s }
        let u1 = uniform(), u2 = uniform()
        let r = (-2 * log(u1)).squareRoot()
        spare = r * sin(2 * .pi * u2)
        return r * cos(2 * .pi * u2)
    }
}
