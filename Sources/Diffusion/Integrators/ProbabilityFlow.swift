import Tensor
// PF: score_sde's reverse-diffusion predictor with probability_flow=True: half the drift, no noise.
//   x ← x + ½(σ_j² − σ_{j−1}²)·s_θ(x, σ(t_i))
// The last step (σ_{j−1} = 0) is a half Tweedie step. NFE = N.

public func probabilityFlow(_ x: UnsafeMutablePointer<Float>, start: [Double], steps n: Int,
                            context c: SamplerContext) -> IntegratorReport {
    let batch = start.count, d = c.dimension, count = batch * d
    let grid = PredictorGrid(start: start, steps: n, context: c)
    let den = FloatBuffer(count), sig = DoubleBuffer(batch)
    let calls0 = c.denoiser.calls
    for i in 0..<n {
        grid.fillNetworkSigma(step: i, into: sig.p)
        c.denoiser.denoise(x, sigma: sig.p, batch: batch, into: den.p)
        for b in 0..<batch {
            let st = sig.p[b]
            let f = Float(0.5 * grid.varianceDrop(step: i, sample: b) / (st * st))
            for k in b * d..<(b + 1) * d { x[k] += f * (den.p[k] - x[k]) }
        }
    }
    return IntegratorReport(nfe: c.denoiser.calls - calls0)
}
