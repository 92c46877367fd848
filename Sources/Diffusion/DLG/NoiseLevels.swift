// The DLG level set and the σ-step's estimator seam (DMCMC's noise-level classifier, Kim & Ye 2022).

/// L levels σ_k = σ_min·(σ_max/σ_min)^{1 − k/L}, k = 0..L−1. Index 0 is the largest σ (= σ_max); the smallest
/// is σ_min·(σ_max/σ_min)^{1/L} (> σ_min). An off-by-one or reversed order silently ruins DLG.
public struct NoiseLevels: Sendable, Equatable {
    public let sigmaMin: Double
    public let sigmaMax: Double
    public let sigmas: [Double]

    public init(sigmaMin: Double = 0.01, sigmaMax: Double, count: Int = 1000) {
        precondition(count >= 2 && sigmaMax > sigmaMin && sigmaMin > 0, "NoiseLevels: need count ≥ 2, σ_max > σ_min > 0")
        self.sigmaMin = sigmaMin
        self.sigmaMax = sigmaMax
        let r = dlog(sigmaMax / sigmaMin)
        sigmas = (0..<count).map { k in sigmaMin * dexp((1 - Double(k) / Double(count)) * r) }
    }

    public var count: Int { sigmas.count }
    public subscript(_ k: Int) -> Double { sigmas[k] }
}

/// The σ-step's noise-level estimator: a classifier over the level set (a trained CNN for images, the exact
/// log p_σ(x) for the testbed). The Gibbs step takes the argmax (the MAP level under the uniform prior), never a
/// sample from the softmax, which would change the chain's behaviour.
public protocol NoiseLevelEstimator: AnyObject {
    var levels: NoiseLevels { get }
    /// For each sample b of x ([batch, dimension] Float32, same units as the denoiser), writes
    /// argmax_k logit_k(x_b) to `out[b]` (an index into `levels`, 0 = largest σ).
    func mostLikelyLevel(_ x: UnsafePointer<Float>, batch: Int, into out: UnsafeMutablePointer<Int>)
}
