// Parameters of the exact-score testbed: a mixture of K Gaussians in d dimensions whose covariances are
// low-rank plus a small isotropic variance, C_k = U_k·diag(λ_k)·U_kᵀ + δ²·I (U_k: d×r, orthonormal columns).
// The data then lies near a union of K affine r-dimensional subspaces, like images near a low-dimensional set.

public struct LowRankMixtureParameters: Sendable {
    public let dimension: Int
    public let rank: Int
    public let components: Int
    /// π_k, summing to 1.
    public let weights: [Double]
    /// μ_k, [K, d] row-major.
    public let means: [Double]
    /// U_k, [K][d, r] row-major (column i = i-th principal direction), orthonormal columns.
    public let bases: [[Double]]
    /// λ_{k,i} ≥ 0, [K, r]: variance along U_k's i-th column, on top of δ².
    public let eigenvalues: [Double]
    /// δ² > 0.
    public let isotropicVariance: Double

    public init(dimension: Int, rank: Int, weights: [Double], means: [Double], bases: [[Double]],
                eigenvalues: [Double], isotropicVariance: Double) {
        let k = weights.count
        precondition(dimension >= 1 && rank >= 1 && rank <= dimension, "testbed: need 1 ≤ rank ≤ dimension")
        precondition(k >= 1 && means.count == k * dimension && bases.count == k
                     && bases.allSatisfy { $0.count == dimension * rank } && eigenvalues.count == k * rank,
                     "testbed: parameter arrays do not match K=\(k), d=\(dimension), r=\(rank)")
        precondition(isotropicVariance > 0, "testbed: isotropic variance must be positive")
        let total = weights.reduce(0, +)
        precondition(total > 0 && weights.allSatisfy { $0 >= 0 }, "testbed: weights must be non-negative, not all 0")
        self.dimension = dimension
        self.rank = rank
        components = k
        self.weights = weights.map { $0 / total }
        self.means = means
        self.bases = bases
        self.eigenvalues = eigenvalues
        self.isotropicVariance = isotropicVariance
    }
}

/// A seeded testbed in image-like units ([0,1]-pixel scale): means around 0.5, per-coordinate standard deviation
/// about `pixelStd` inside each component, spectra decaying as 1/i.
public struct LowRankMixtureSpec: Sendable, Equatable, Codable {
    public var dimension: Int = 256
    public var components: Int = 8
    public var rank: Int = 8
    /// δ, the isotropic standard deviation around each subspace.
    public var isotropicStd: Double = 0.02
    /// Per-coordinate standard deviation of a component's low-rank part (average over coordinates).
    public var pixelStd: Double = 0.2
    /// Per-coordinate standard deviation of the component means around 0.5.
    public var meanSpread: Double = 0.15
    public var seed: UInt64 = 0

    public init(dimension: Int = 256, components: Int = 8, rank: Int = 8, isotropicStd: Double = 0.02,
                pixelStd: Double = 0.2, meanSpread: Double = 0.15, seed: UInt64 = 0) {
        self.dimension = dimension; self.components = components; self.rank = rank
        self.isotropicStd = isotropicStd; self.pixelStd = pixelStd; self.meanSpread = meanSpread; self.seed = seed
    }

    /// One-line description, e.g. "testbed(d=256,K=8,r=8,δ=0.02,seed=0)".
    public var label: String {
        "testbed(d=\(dimension),K=\(components),r=\(rank),delta=\(isotropicStd),std=\(pixelStd),spread=\(meanSpread),seed=\(seed))"
    }

    public func makeParameters() -> LowRankMixtureParameters {
        let d = dimension, r = min(rank, dimension), k = components
        precondition(d >= 1 && k >= 1 && r >= 1, "testbed: dimension, components and rank must be ≥ 1")
        var g = Xoshiro256(seed: seed ^ 0x7E57_BED0)
        var weights = [Double](), means = [Double](), bases = [[Double]](), eig = [Double]()
        let harmonic = (1...r).reduce(0.0) { $0 + 1 / Double($1) }
        let totalVariance = pixelStd * pixelStd * Double(d)
        for _ in 0..<k {
            weights.append(0.5 + Double(g.next() >> 11) * 0x1p-53)
            for _ in 0..<d { means.append(0.5 + meanSpread * g.normal()) }
            bases.append(randomOrthonormal(rows: d, cols: r, generator: &g))
            for i in 1...r { eig.append(totalVariance / harmonic / Double(i)) }
        }
        return LowRankMixtureParameters(dimension: d, rank: r, weights: weights, means: means, bases: bases,
                                        eigenvalues: eig, isotropicVariance: isotropicStd * isotropicStd)
    }
}

/// d×r row-major matrix with orthonormal columns: Gaussian entries, modified Gram–Schmidt applied twice.
func randomOrthonormal(rows d: Int, cols r: Int, generator g: inout Xoshiro256) -> [Double] {
    var m = (0..<(d * r)).map { _ in g.normal() }
    for _ in 0..<2 {
        for j in 0..<r {
            for p in 0..<j {
                var dot = 0.0
                for i in 0..<d { dot += m[i * r + j] * m[i * r + p] }
                for i in 0..<d { m[i * r + j] -= dot * m[i * r + p] }
            }
            var n2 = 0.0
            for i in 0..<d { n2 += m[i * r + j] * m[i * r + j] }
            let inv = 1 / n2.squareRoot()
            for i in 0..<d { m[i * r + j] *= inv }
        }
    }
    return m
}
