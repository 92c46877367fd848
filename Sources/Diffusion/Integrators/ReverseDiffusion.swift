import Tensor
// RD: score_sde's reverse-diffusion (SMLD ancestral-like) predictor, corrector off. NFE = N.
//   x_mean = x + (σ_j² − σ_{j−1}²)·s_θ(x, σ(t_i));  x = x_mean + √(σ_j² − σ_{j−1}²)·z
// Returns the noise-free x_mean of the last step (a full Tweedie step at σ_min).

public func reverseDiffusion(_ x: UnsafeMutablePointer<Float>, start: [Double], steps n: Int,
                             context c: SamplerContext) -> IntegratorReport {
    let batch = start.count, d = c.dimension, count = batch * d
    let grid = PredictorGrid(start: start, steps: n, context: c)
    let den = FloatBuffer(count), z = FloatBuffer(count), sig = DoubleBuffer(batch)
    let calls0 = c.denoiser.calls
    for i in 0..<n {
        grid.fillNetworkSigma(step: i, into: sig.p)
        c.denoiser.denoise(x, sigma: sig.p, batch: batch, into: den.p)
        let last = i == n - 1
        if !last { c.noise.fillNormal(z.p, count: count) }
        for b in 0..<batch {
            let drop = grid.varianceDrop(step: i, sample: b)
            let st = sig.p[b]
            let f = Float(drop / (st * st)), amp = Float(drop.squareRoot())
            for k in b * d..<(b + 1) * d {
                x[k] += f * (den.p[k] - x[k])                        // x_mean: score = (D − x)/σ_t²
                if !last { x[k] += amp * z.p[k] }
            }
        }
    }
    return IntegratorReport(nfe: c.denoiser.calls - calls0)
}
