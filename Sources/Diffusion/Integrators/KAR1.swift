import Tensor
// KAR1: Karras et al. 2022 Algorithm 1, deterministic Heun on dx/dσ = (x − D(x;σ))/σ.
// NFE = 2N − 3: one call per step, plus a Heun correction on every step but the last (Euler to σ = 0).

/// Integrates x (row-major [batch, d], modified in place) from per-sample level `start[b]` to σ = 0.
public func kar1(_ x: UnsafeMutablePointer<Float>, start: [Double], gridPoints n: Int,
                 context c: SamplerContext) -> IntegratorReport {
    let batch = start.count, d = c.dimension, count = batch * d
    let grids = start.map { karrasSigmas(start: $0, gridPoints: n, sigmaLow: c.karrasSigmaLow, rho: c.karrasRho) }
    let m = n - 1
    let den = FloatBuffer(count), d1 = FloatBuffer(count), xt = FloatBuffer(count)
    let sCur = DoubleBuffer(batch), sNext = DoubleBuffer(batch)
    let calls0 = c.denoiser.calls
    for i in 0..<m {
        for b in 0..<batch { sCur.p[b] = grids[b][i]; sNext.p[b] = grids[b][i + 1] }
        c.denoiser.denoise(x, sigma: sCur.p, batch: batch, into: den.p)
        for b in 0..<batch {
            let si = Float(sCur.p[b]), h = Float(sNext.p[b] - sCur.p[b])
            for k in b * d..<(b + 1) * d {
                d1.p[k] = (x[k] - den.p[k]) / si                     // d1 = (x − D)/σ_i
                xt.p[k] = x[k] + h * d1.p[k]                          // Euler predictor
            }
        }
        if i < m - 1 {
            c.denoiser.denoise(xt.p, sigma: sNext.p, batch: batch, into: den.p)
            for b in 0..<batch {
                let sn = Float(sNext.p[b]), h = Float(sNext.p[b] - sCur.p[b])
                for k in b * d..<(b + 1) * d {
                    let d2 = (xt.p[k] - den.p[k]) / sn
                    x[k] += 0.5 * h * (d1.p[k] + d2)                  // Heun corrector
                }
            }
        } else {
            x.update(from: xt.p, count: count)                       // last step: Euler to σ = 0
        }
    }
    return IntegratorReport(nfe: c.denoiser.calls - calls0)
}
