import Tensor
// RK45: the probability-flow ODE solved by Dormand–Prince 5(4) with scipy's control, as DMCMC calls
// `solve_ivp(method='RK45')`.
//   dx/dt = −½·g_b(t)²·s_θ(x, σ_b(t)) = ln(s_b/σ_min)·(x − D(x; σ_b(t))),  t from 1 (σ = s_b) down to ε_t.
// The whole batch is one float64 state vector (shared step sizes, batch-coupled NFE); the model sees a float32
// copy. No internal denoising. NFE = nfev.

public func rk45(_ x: UnsafeMutablePointer<Float>, start: [Double], rtol: Double, atol: Double,
                 context c: SamplerContext) throws -> IntegratorReport {
    let batch = start.count, d = c.dimension, count = batch * d
    let sdes = start.map { VESDE(sigmaMin: c.sigmaMin, start: $0) }
    let y = DoubleBuffer(count), xf = FloatBuffer(count), den = FloatBuffer(count), sig = DoubleBuffer(batch)
    for k in 0..<count { y.p[k] = Double(x[k]) }
    let calls0 = c.denoiser.calls
    let stats = try solveRK45(dimension: count, from: 1, to: c.endTime, y: y.p, rtol: rtol, atol: atol) { t, yy, out in
        for k in 0..<count { xf.p[k] = Float(yy[k]) }
        for b in 0..<batch { sig.p[b] = sdes[b].sigma(at: t) }
        c.denoiser.denoise(xf.p, sigma: sig.p, batch: batch, into: den.p)
        for b in 0..<batch {
            let l = sdes[b].logRatio
            for k in b * d..<(b + 1) * d { out[k] = l * (yy[k] - Double(den.p[k])) }
        }
    }
    for k in 0..<count { x[k] = Float(y.p[k]) }
    return IntegratorReport(nfe: c.denoiser.calls - calls0, rk45: stats)
}
