import Tensor
// The final Tweedie step every method, vanilla or DLG, applies after its integrator's own last step (DMCMC's
// `twd_eps`): x ← x + τ²·s_θ(x, τ) = D(x; τ). 1 NFE.
// Then an optional clamp (images: [0,1]).

public func tweedie(_ x: UnsafeMutablePointer<Float>, batch: Int, tau: Double, clamp: ClosedRange<Float>?,
                    context c: SamplerContext) -> Int {
    let d = c.dimension, count = batch * d
    let den = FloatBuffer(count), sig = DoubleBuffer(batch)
    for b in 0..<batch { sig.p[b] = tau }
    let calls0 = c.denoiser.calls
    c.denoiser.denoise(x, sigma: sig.p, batch: batch, into: den.p)
    x.update(from: den.p, count: count)
    if let r = clamp {
        for k in 0..<count { x[k] = min(max(x[k], r.lowerBound), r.upperBound) }
    }
    return c.denoiser.calls - calls0
}

/// Settings of the finishing step.
public struct FinishSettings: Sendable, Equatable {
    /// τ (`twd_eps`): 0.01 for CIFAR10, 0.001 for CelebA-HQ.
    public var tau: Double
    /// Clamp after the Tweedie step ([0,1] for images, nil for the testbed).
    public var clamp: ClosedRange<Float>?
    public init(tau: Double = 0.01, clamp: ClosedRange<Float>? = nil) { self.tau = tau; self.clamp = clamp }
}

/// A vanilla run (no DLG): x = σ_max·z, the integrator from s ≡ σ_max, then the Tweedie step.
/// Writes `batch` samples to `out`; returns the NFE per sample (integrator + 1), as counted.
public func sampleVanilla(_ method: Integrator, batch: Int, sigmaMax: Double, finish: FinishSettings,
                          context c: SamplerContext, into out: UnsafeMutablePointer<Float>) throws -> IntegratorReport {
    let count = batch * c.dimension
    c.noise.fillNormal(out, count: count)
    let smax = Float(sigmaMax)
    for k in 0..<count { out[k] *= smax }
    let calls0 = c.denoiser.calls
    var report = try method.integrate(out, start: Array(repeating: sigmaMax, count: batch), context: c)
    _ = tweedie(out, batch: batch, tau: finish.tau, clamp: finish.clamp, context: c)
    report.nfe = c.denoiser.calls - calls0
    return report
}
