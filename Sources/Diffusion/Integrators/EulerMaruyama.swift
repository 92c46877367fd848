import Tensor
// EM: Euler–Maruyama on the reverse VE SDE (score_sde `EulerMaruyamaPredictor`), with its Δt = 1/N (not the grid
// spacing (1−ε_t)/(N−1)). NFE = N.
//   x_mean = x + g(t_i)²·s_θ(x, σ(t_i))·Δt;  x = x_mean + g(t_i)·√Δt·z,  g² = 2σ(t)²·ln(s/σ_min)
// Returns the noise-free x_mean of the last step.

public func eulerMaruyama(_ x: UnsafeMutablePointer<Float>, start: [Double], steps n: Int,
                          context c: SamplerContext) -> IntegratorReport {
    let batch = start.count, d = c.dimension, count = batch * d
    let grid = PredictorGrid(start: start, steps: n, context: c)
    let dt = 1 / Double(n)
    let den = FloatBuffer(count), z = FloatBuffer(count), sig = DoubleBuffer(batch)
    let calls0 = c.denoiser.calls
    for i in 0..<n {
        grid.fillNetworkSigma(step: i, into: sig.p)
        c.denoiser.denoise(x, sigma: sig.p, batch: batch, into: den.p)
        let last = i == n - 1
        if !last { c.noise.fillNormal(z.p, count: count) }
        let t = grid.time(i)
        for b in 0..<batch {
            let g2 = grid.sdes[b].gSquared(at: t), st = sig.p[b]
            let f = Float(g2 * dt / (st * st)), amp = Float((g2 * dt).squareRoot())
            for k in b * d..<(b + 1) * d {
                x[k] += f * (den.p[k] - x[k])
                if !last { x[k] += amp * z.p[k] }
            }
        }
    }
    return IntegratorReport(nfe: c.denoiser.calls - calls0)
}
