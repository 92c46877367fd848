import Diffusion
import Foundation

/// The training objective of DiT and DiT-MoE (upstream `GaussianDiffusion.training_losses` with 1000 linear betas,
/// ε prediction, learned-range variance, MSE loss type, no rescaling), per sample b of a batch:
///
///   x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε;   model(x_t, t, y) = [ε̂ (C channels), v (C channels)]
///   mse_b = mean over C·H·W of (ε − ε̂)²
///   vb_b  = mean over C·H·W of KL(q(x_{t−1} | x_t, x₀) ‖ p(x_{t−1} | x_t)) / ln 2        (t > 0)
///         = mean over C·H·W of −log p_discretised(x₀ | μ, σ²) / ln 2                     (t = 0)
///   with p's mean from ε̂ held constant (the VB term trains only the variance) and
///   log σ² = f·log β_t + (1 − f)·log σ̃²_t,clipped, f = (v + 1)/2.
///   loss = mean_b (mse_b + vb_b)
///
/// Data are in [−1, 1] pixel units; the discretised likelihood uses upstream's 256-level bins (half-width 1/255)
/// and its tanh approximation of the normal CDF. Schedules are Float64.
public struct DDPMObjective: Sendable {
    public let steps = 1000
    let betas: [Double]
    let alphasCumprod: [Double]
    let posteriorLogVarianceClipped: [Double]
    let posteriorMeanCoef1: [Double]   // on x₀
    let posteriorMeanCoef2: [Double]   // on x_t

    public init() {
        betas = DDPMSchedule.linearBetas(1000)
        var abar: [Double] = [], prod = 1.0
        for b in betas { prod *= 1 - b; abar.append(prod) }
        alphasCumprod = abar
        var logVar: [Double] = [], coef1: [Double] = [], coef2: [Double] = []
        for t in 0..<1000 {
            let prev = t == 0 ? 1.0 : abar[t - 1]
            coef1.append(betas[t] * prev.squareRoot() / (1 - abar[t]))
            coef2.append((1 - prev) * (1 - betas[t]).squareRoot() / (1 - abar[t]))
        }
        // Posterior variance β_t(1 − ᾱ_{t−1})/(1 − ᾱ_t); its log is "clipped" by using t = 1's value at t = 0.
        for t in 0..<1000 {
            let u = max(t, 1)
            logVar.append(log(betas[u] * (1 - abar[u - 1]) / (1 - abar[u])))
        }
        posteriorLogVarianceClipped = logVar
        posteriorMeanCoef1 = coef1
        posteriorMeanCoef2 = coef2
    }

    /// x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε for each sample (`imageSize` values per sample).
    public func noisy(x0: UnsafePointer<Float>, noise: UnsafePointer<Float>, t: UnsafePointer<Int32>, batch: Int,
                      imageSize: Int, into xt: UnsafeMutablePointer<Float>) {
        for b in 0..<batch {
            let ab = alphasCumprod[Int(t[b])]
            let s = Float(ab.squareRoot()), s1 = Float((1 - ab).squareRoot())
            for i in (b * imageSize)..<((b + 1) * imageSize) { xt[i] = s * x0[i] + s1 * noise[i] }
        }
    }

    public struct Terms {
        public var mse: [Double]
        public var vb: [Double]
        public var mean: Double { zip(mse, vb).map { $0 + $1 }.reduce(0, +) / Double(max(mse.count, 1)) }
        public var meanMSE: Double { mse.reduce(0, +) / Double(max(mse.count, 1)) }
        public var meanVB: Double { vb.reduce(0, +) / Double(max(vb.count, 1)) }
    }

    /// The loss terms of a model output `out [B, 2C, H, W]`, and when `dOut` is given, d(loss)/d(out) written into
    /// it (same layout; `loss` = mean over the batch of mse + vb).
    public func evaluate(out: UnsafePointer<Float>, x0: UnsafePointer<Float>, xt: UnsafePointer<Float>,
                         noise: UnsafePointer<Float>, t: UnsafePointer<Int32>, batch: Int, channels: Int, plane: Int,
                         dOut: UnsafeMutablePointer<Float>?) -> Terms {
        let n = channels * plane, invN = 1 / Double(n), invB = 1 / Double(batch), ln2 = log(2.0)
        var terms = Terms(mse: Array(repeating: 0, count: batch), vb: Array(repeating: 0, count: batch))
        for b in 0..<batch {
            let step = Int(t[b])
            let ab = alphasCumprod[step]
            let recip = (1 / ab).squareRoot(), recipm1 = (1 / ab - 1).squareRoot()
            let c1 = posteriorMeanCoef1[step], c2 = posteriorMeanCoef2[step]
            let minLog = posteriorLogVarianceClipped[step], maxLog = log(betas[step])
            let o = out + b * 2 * n, dO = dOut.map { $0 + b * 2 * n }
            var mse = 0.0, vb = 0.0
            for i in 0..<n {
                let j = b * n + i
                let eps = Double(o[i]), v = Double(o[n + i])
                let x0v = Double(x0[j]), xtv = Double(xt[j])
                let err = eps - Double(noise[j])
                mse += err * err
                // Model mean from the (frozen) ε̂; learned log-variance from v.
                let predX0 = recip * xtv - recipm1 * eps
                let mu = c1 * predX0 + c2 * xtv
                let frac = (v + 1) / 2
                let logVar = frac * maxLog + (1 - frac) * minLog
                let term: Double, dLogVar: Double
                if step == 0 {
                    (term, dLogVar) = DDPMObjective.decoderNLL(x: x0v, mean: mu, logVariance: logVar)
                } else {
                    let trueMean = c1 * x0v + c2 * xtv, trueLogVar = minLog
                    let diff = trueMean - mu
                    let r = exp(trueLogVar - logVar), q = diff * diff * exp(-logVar)
                    term = 0.5 * (-1 + logVar - trueLogVar + r + q)
                    dLogVar = 0.5 * (1 - r - q)
                }
                vb += term
                if let dO {
                    dO[i] = Float(2 * err * invN * invB)
                    dO[n + i] = Float(dLogVar * 0.5 * (maxLog - minLog) * invN / ln2 * invB)
                }
            }
            terms.mse[b] = mse * invN
            terms.vb[b] = vb * invN / ln2
        }
        return terms
    }

    /// −log of upstream's discretised Gaussian likelihood of x (in [−1, 1], bins of half-width 1/255, edges at
    /// ±0.999 open to ±∞) under N(mean, exp(logVariance)), and its derivative with respect to logVariance.
    static func decoderNLL(x: Double, mean: Double, logVariance: Double) -> (value: Double, dLogVariance: Double) {
        let logScale = 0.5 * logVariance
        let inv = exp(-logScale), centred = x - mean
        let plusIn = inv * (centred + 1 / 255.0), minIn = inv * (centred - 1 / 255.0)
        // d(in)/d(logScale) = −in; d(logScale)/d(logVariance) = 1/2.
        let logProb: Double, dLogProbDLogScale: Double
        if x < -0.999 {
            let cdf = approxNormalCDF(plusIn)
            logProb = log(max(cdf, 1e-12))
            dLogProbDLogScale = cdf > 1e-12 ? approxNormalPDF(plusIn) * -plusIn / cdf : 0
        } else if x > 0.999 {
            let tail = 1 - approxNormalCDF(minIn)
            logProb = log(max(tail, 1e-12))
            dLogProbDLogScale = tail > 1e-12 ? -approxNormalPDF(minIn) * -minIn / tail : 0
        } else {
            let delta = approxNormalCDF(plusIn) - approxNormalCDF(minIn)
            logProb = log(max(delta, 1e-12))
            dLogProbDLogScale = delta > 1e-12
                ? (approxNormalPDF(plusIn) * -plusIn - approxNormalPDF(minIn) * -minIn) / delta : 0
        }
        return (-logProb, -dLogProbDLogScale * 0.5)
    }

    /// Upstream's approximation Φ(u) ≈ ½(1 + tanh(√(2/π)(u + 0.044715u³))).
    static func approxNormalCDF(_ u: Double) -> Double {
        0.5 * (1 + tanh((2 / Double.pi).squareRoot() * (u + 0.044715 * u * u * u)))
    }

    /// d/du of `approxNormalCDF`.
    static func approxNormalPDF(_ u: Double) -> Double {
        let k = (2 / Double.pi).squareRoot()
        let th = tanh(k * (u + 0.044715 * u * u * u))
        return 0.5 * (1 - th * th) * k * (1 + 3 * 0.044715 * u * u)
    }
}
