// The one seam every sampler talks to (the denoiser view of Karras et al. 2022): D(x; σ) for a batch with one σ
// per sample.
//
// Layout: x and the output are row-major [batch, dimension] Float32 buffers, one sample per row.
// σ: one positive Double per sample, in the sampler's data units (for images: [0,1]-pixel units, as in DMCMC).
// The score follows from Tweedie: ∇ₓ log p_σ(x) = (D(x;σ) − x)/σ².

/// A denoiser: the posterior mean E[x₀ | x₀ + σ·z = x] (exact or learned).
public protocol Denoiser: AnyObject {
    /// Elements per sample (row length of x).
    var dimension: Int { get }
    /// Writes `out[b, :] = D(x[b, :]; sigma[b])` for b in 0..<batch. Requires sigma[b] > 0; `out` must not alias `x`.
    func denoise(_ x: UnsafePointer<Float>, sigma: UnsafePointer<Double>, batch: Int,
                 into out: UnsafeMutablePointer<Float>)
}

/// Owns NFE: every sampler calls the model through this wrapper, and NFE is read from it, never derived from step
/// counts. One batched call is one NFE for every sample in the batch.
public final class CountingDenoiser: Denoiser {
    public let model: Denoiser
    /// Number of batched model calls so far (= NFE per sample when every call covers the whole batch).
    public private(set) var calls: Int = 0
    /// Sum of batch sizes over all calls (sample-evaluations).
    public private(set) var sampleEvaluations: Int = 0

    public init(_ model: Denoiser) { self.model = model }

    public var dimension: Int { model.dimension }

    public func denoise(_ x: UnsafePointer<Float>, sigma: UnsafePointer<Double>, batch: Int,
                        into out: UnsafeMutablePointer<Float>) {
        countCall(batch: batch)
        model.denoise(x, sigma: sigma, batch: batch, into: out)
    }

    func countCall(batch: Int) {
        calls += 1
        sampleEvaluations += batch
    }

    /// Sets both counters to zero (e.g. after an uncounted warm-up).
    public func resetCounts() {
        calls = 0
        sampleEvaluations = 0
    }
}
