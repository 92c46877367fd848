import CBLAS

// First and second moments in float64, as the Fréchet distance uses them.

public struct GaussianMoments: Sendable {
    public let dimension: Int
    /// Number of samples the moments came from (nil for exact/closed-form moments). FD is biased at small n.
    public private(set) var sampleCount: Int?
    public let mean: [Double]
    /// [d, d] row-major, symmetric.
    public let covariance: [Double]

    /// Exact moments (e.g. closed form).
    public init(mean: [Double], covariance: [Double]) {
        precondition(covariance.count == mean.count * mean.count,
                     "GaussianMoments: covariance has \(covariance.count) entries, expected \(mean.count)²")
        dimension = mean.count
        sampleCount = nil
        self.mean = mean
        self.covariance = covariance
    }

    /// Moments estimated elsewhere (streamed features, or reference statistics read from a file) from `sampleCount`
    /// samples, if known.
    public init(mean: [Double], covariance: [Double], sampleCount: Int?) {
        self.init(mean: mean, covariance: covariance)
        self.sampleCount = sampleCount
    }

    /// Sample mean and unbiased (n − 1) covariance of `count` samples, [count, dimension] row-major Float32
    /// (numpy `np.cov(x, rowvar=False)`, as pytorch-fid).
    public init(samples: UnsafePointer<Float>, count n: Int, dimension d: Int) {
        precondition(n >= 2, "GaussianMoments: need at least 2 samples, got \(n)")
        var mean = [Double](repeating: 0, count: d)
        for s in 0..<n { for i in 0..<d { mean[i] += Double(samples[s * d + i]) } }
        for i in 0..<d { mean[i] /= Double(n) }
        var centred = [Double](repeating: 0, count: n * d)
        for s in 0..<n { for i in 0..<d { centred[s * d + i] = Double(samples[s * d + i]) - mean[i] } }
        var cov = [Double](repeating: 0, count: d * d)
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(d), Int32(n), 1 / Double(n - 1),
                    centred, Int32(d), 0, &cov, Int32(d))
        for i in 0..<d { for j in (i + 1)..<max(i + 1, d) { cov[j * d + i] = cov[i * d + j] } }
        dimension = d
        sampleCount = n
        self.mean = mean
        covariance = cov
    }

    public init(samples: [Float], dimension d: Int) {
        precondition(d > 0 && samples.count % d == 0, "GaussianMoments: \(samples.count) values is not a multiple of d=\(d)")
        self = samples.withUnsafeBufferPointer { GaussianMoments(samples: $0.baseAddress!, count: samples.count / d, dimension: d) }
    }
}
