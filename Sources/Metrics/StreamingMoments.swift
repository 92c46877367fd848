import CBLAS

// Mean and covariance of a stream of feature batches, in Float64, without keeping the features.
//
// Each batch is reduced to its own mean and centred scatter S_b = Σ (x − x̄_b)(x − x̄_b)ᵀ (dsyrk on centred rows),
// then merged into the running (n, μ, M) by Chan et al.'s pairwise update:
//   δ = x̄_b − μ,  μ ← μ + δ·n_b/(n + n_b),  M ← M + S_b + δδᵀ·n·n_b/(n + n_b).
// Centring per batch avoids the cancellation of raw second moments (E[xxᵀ] − μμᵀ) when |μ| ≫ spread, and the result
// does not depend on how the stream is cut into batches beyond round-off. The covariance is M/(n − 1), numpy's
// `np.cov(x, rowvar=False)` as pytorch-fid computes it.

public final class StreamingMoments {
    public let dimension: Int
    public private(set) var count = 0
    private var mean: [Double]
    /// Upper triangle (row-major) of the centred scatter M; the lower triangle is filled by `moments()`.
    private var scatter: [Double]
    private var centred: [Double] = []
    private var batchMean: [Double]
    private var batchScatter: [Double]

    public init(dimension d: Int) {
        precondition(d > 0, "StreamingMoments: dimension must be positive")
        dimension = d
        mean = .init(repeating: 0, count: d); batchMean = mean
        scatter = .init(repeating: 0, count: d * d); batchScatter = scatter
    }

    /// Adds `n` samples, [n, dimension] row-major Float32.
    public func add(_ x: UnsafePointer<Float>, count n: Int) {
        guard n > 0 else { return }
        let d = dimension
        if centred.count < n * d { centred = .init(repeating: 0, count: n * d) }
        for i in 0..<d { batchMean[i] = 0 }
        for s in 0..<n { for i in 0..<d { batchMean[i] += Double(x[s * d + i]) } }
        for i in 0..<d { batchMean[i] /= Double(n) }
        for s in 0..<n { for i in 0..<d { centred[s * d + i] = Double(x[s * d + i]) - batchMean[i] } }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(d), Int32(n), 1, centred, Int32(d), 0, &batchScatter, Int32(d))
        merge(count: n, mean: batchMean, scatter: batchScatter)
    }

    public func add(_ x: [Float]) {
        precondition(x.count % dimension == 0, "StreamingMoments: \(x.count) values is not a multiple of d=\(dimension)")
        x.withUnsafeBufferPointer { add($0.baseAddress!, count: x.count / dimension) }
    }

    /// Merges another stream's moments (e.g. a worker's share).
    public func merge(_ other: StreamingMoments) {
        precondition(other.dimension == dimension, "StreamingMoments: dimensions differ")
        merge(count: other.count, mean: other.mean, scatter: other.scatter)
    }

    private func merge(count nb: Int, mean mb: [Double], scatter sb: [Double]) {
        guard nb > 0 else { return }
        let d = dimension, n = count
        let total = Double(n + nb), weight = Double(n) * Double(nb) / total
        var delta = [Double](repeating: 0, count: d)
        for i in 0..<d { delta[i] = mb[i] - mean[i] }
        for i in 0..<d {
            let row = i * d, di = delta[i] * weight
            for j in i..<d { scatter[row + j] += sb[row + j] + di * delta[j] }
        }
        for i in 0..<d { mean[i] += delta[i] * Double(nb) / total }
        count = n + nb
    }

    /// Mean and unbiased covariance (n − 1) of everything added; needs at least 2 samples.
    public func moments() -> GaussianMoments {
        precondition(count >= 2, "StreamingMoments: need at least 2 samples, have \(count)")
        let d = dimension
        var cov = [Double](repeating: 0, count: d * d)
        let scale = 1 / Double(count - 1)
        for i in 0..<d {
            for j in i..<d {
                let v = scatter[i * d + j] * scale
                cov[i * d + j] = v; cov[j * d + i] = v
            }
        }
        return GaussianMoments(mean: mean, covariance: cov, sampleCount: count)
    }
}
