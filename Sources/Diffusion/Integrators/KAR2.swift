import Tensor
// KAR2: Karras et al. 2022 Algorithm 2, stochastic churn + Heun, as DMCMC's code runs it: γ = min(S_churn/N, √2 − 1)
// with N the grid points including 0 (EDM divides by its step count N − 1), churn noise × S_noise, and an Euler
// last step to σ = 0 without Heun correction. NFE = 2N − 3, as KAR1.

/// Churn hyper-parameters in the sampler's σ units. DMCMC: 80 / 0.05 / 1.0 / 1.007.
public struct ChurnSettings: Sendable, Equatable {
    public var churn: Double
    public var tMin: Double
    public var tMax: Double
    public var noise: Double
    public init(churn: Double, tMin: Double, tMax: Double, noise: Double) {
        self.churn = churn; self.tMin = tMin; self.tMax = tMax; self.noise = noise
    }
    public static let dmcmc = ChurnSettings(churn: 80, tMin: 0.05, tMax: 1.0, noise: 1.007)
}

public func kar2(_ x: UnsafeMutablePointer<Float>, start: [Double], gridPoints n: Int,
                 churn: ChurnSettings = .dmcmc, context c: SamplerContext) -> IntegratorReport {
    let batch = start.count, d = c.dimension, count = batch * d
    let grids = start.map { karrasSigmas(start: $0, gridPoints: n, sigmaLow: c.karrasSigmaLow, rho: c.karrasRho) }
    let m = n - 1
    let gammaMax = min(churn.churn / Double(n), 2.0.squareRoot() - 1)    // S_churn/N with N = grid points
    let den = FloatBuffer(count), d1 = FloatBuffer(count), xp = FloatBuffer(count), z = FloatBuffer(count)
    let sHat = DoubleBuffer(batch), sNext = DoubleBuffer(batch)
    let calls0 = c.denoiser.calls
    for i in 0..<m {
        c.noise.fillNormal(z.p, count: count)                        // drawn every step, even when γ = 0
        for b in 0..<batch {
            let si = grids[b][i]
            let gamma = (churn.tMin <= si && si <= churn.tMax) ? gammaMax : 0
            let sh = (1 + gamma) * si
            sHat.p[b] = sh
            sNext.p[b] = grids[b][i + 1]
            let amp = Float((sh * sh - si * si).squareRoot() * churn.noise)
            for k in b * d..<(b + 1) * d { x[k] += amp * z.p[k] }     // x̂ = x + √(σ̂² − σ_i²)·S_noise·z
        }
        c.denoiser.denoise(x, sigma: sHat.p, batch: batch, into: den.p)
        for b in 0..<batch {
            let sh = Float(sHat.p[b]), h = Float(sNext.p[b] - sHat.p[b])
            for k in b * d..<(b + 1) * d {
                d1.p[k] = (x[k] - den.p[k]) / sh
                xp.p[k] = x[k] + h * d1.p[k]                          // x' = x̂ + (σ_{i+1} − σ̂)·d1
            }
        }
        if i < m - 1 {
            c.denoiser.denoise(xp.p, sigma: sNext.p, batch: batch, into: den.p)
            for b in 0..<batch {
                let sn = Float(sNext.p[b]), h = Float(sNext.p[b] - sHat.p[b])
                for k in b * d..<(b + 1) * d {
                    let d2 = (xp.p[k] - den.p[k]) / sn
                    x[k] += 0.5 * h * (d1.p[k] + d2)                  // x ← x̂ + ½(σ_{i+1} − σ̂)(d1 + d2)
                }
            }
        } else {
            x.update(from: xp.p, count: count)
        }
    }
    return IntegratorReport(nfe: c.denoiser.calls - calls0)
}
