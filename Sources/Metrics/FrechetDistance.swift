import CBLAS

// Fréchet distance between two Gaussians (the FID formula), float64:
//   FD = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2·tr((Σ₁^{½} Σ₂ Σ₁^{½})^{½})
// Both square roots come from symmetric eigen-decompositions (Σ₁^{½} Σ₂ Σ₁^{½} is symmetric PSD), so nothing is
// ever complex; tiny negative eigenvalues from round-off are clamped to 0.

public enum FrechetDistance {
    /// FD between two sets of moments (sample-versus-sample or sample-versus-exact).
    public static func between(_ a: GaussianMoments, _ b: GaussianMoments) throws -> Double {
        precondition(a.dimension == b.dimension, "FD: dimensions differ (\(a.dimension) vs \(b.dimension))")
        let n = a.dimension
        var meanTerm = 0.0
        for i in 0..<n { let t = a.mean[i] - b.mean[i]; meanTerm += t * t }
        var trA = 0.0, trB = 0.0
        for i in 0..<n { trA += a.covariance[i * n + i]; trB += b.covariance[i * n + i] }
        let rootA = try symmetricSqrt(a.covariance, dimension: n)
        var tmp = [Double](repeating: 0, count: n * n), m = [Double](repeating: 0, count: n * n)
        cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, Int32(n), Int32(n), 1, rootA, Int32(n),
                    b.covariance, Int32(n), 0, &tmp, Int32(n))
        cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, Int32(n), Int32(n), 1, rootA, Int32(n),
                    tmp, Int32(n), 0, &m, Int32(n))
        for i in 0..<n { for j in (i + 1)..<max(i + 1, n) { let s = 0.5 * (m[i * n + j] + m[j * n + i]); m[i * n + j] = s; m[j * n + i] = s } }
        let (w, _) = try symmetricEigen(m, dimension: n)
        var trRoot = 0.0
        for v in w { trRoot += max(v, 0).squareRoot() }
        return meanTerm + trA + trB - 2 * trRoot
    }

    /// FD of samples ([count, d] Float32) against exact moments.
    public static func samples(_ x: [Float], dimension d: Int, against reference: GaussianMoments) throws -> Double {
        try between(GaussianMoments(samples: x, dimension: d), reference)
    }

    /// FD between two sample sets.
    public static func samples(_ x: [Float], _ y: [Float], dimension d: Int) throws -> Double {
        try between(GaussianMoments(samples: x, dimension: d), GaussianMoments(samples: y, dimension: d))
    }
}
