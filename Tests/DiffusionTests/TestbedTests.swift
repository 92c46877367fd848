import XCTest
@testable import Diffusion
import Metrics

final class TestbedTests: XCTestCase {
    /// log p_σ, D(x;σ) and the data moments match a dense numpy/scipy evaluation with full covariances
    /// (tools/testbed_fixture.py). Tolerances: log p absolute 1e-9, D absolute 1e-10, mean/cov absolute 1e-12.
    func testMatchesDenseReference() throws {
        let fx = try loadJSON("testbed_dense.json")
        let d = fx["d"] as! Int, r = fx["r"] as! Int
        let p = LowRankMixtureParameters(dimension: d, rank: r, weights: fx["weights"] as! [Double],
                                         means: fx["means"] as! [Double], bases: fx["bases"] as! [[Double]],
                                         eigenvalues: fx["eigenvalues"] as! [Double],
                                         isotropicVariance: fx["isotropic_variance"] as! Double)
        let tb = LowRankGaussianMixture(p)
        for q in fx["queries"] as! [[String: Any]] {
            let x = q["x"] as! [Double], sigma = q["sigma"] as! Double
            XCTAssertEqual(tb.logDensity(x, sigma: sigma), q["log_p"] as! Double, accuracy: 1e-9, "σ=\(sigma)")
            var out = [Double](repeating: 0, count: d)
            var s = [sigma]
            tb.denoise64(x, sigma: &s, batch: 1, into: &out)
            for (a, b) in zip(out, q["D"] as! [Double]) { XCTAssertEqual(a, b, accuracy: 1e-10, "σ=\(sigma)") }
        }
        for (a, b) in zip(tb.dataMean(), fx["mean"] as! [Double]) { XCTAssertEqual(a, b, accuracy: 1e-12) }
        for (a, b) in zip(tb.dataCovariance(), fx["cov"] as! [Double]) { XCTAssertEqual(a, b, accuracy: 1e-12) }
    }

    /// The closed-form score equals a central finite difference of log p_σ (h = 1e-5): relative 1e-6 of ‖score‖.
    func testScoreMatchesFiniteDifferenceOfLogDensity() {
        let tb = LowRankGaussianMixture(LowRankMixtureSpec(dimension: 12, components: 4, rank: 3, seed: 11))
        let x0 = tb.sample(count: 1, seed: 2).map(Double.init)
        for sigma in [0.03, 0.3, 3.0] {
            var g = Xoshiro256(seed: 4)
            let x = x0.map { $0 + sigma * g.normal() }
            var score = [Double](repeating: 0, count: 12)
            var s = [sigma]
            tb.score64(x, sigma: &s, batch: 1, into: &score)
            let norm = score.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let h = 1e-5 * max(sigma, 0.1)
            for i in 0..<12 {
                var xp = x, xm = x
                xp[i] += h; xm[i] -= h
                let fd = (tb.logDensity(xp, sigma: sigma) - tb.logDensity(xm, sigma: sigma)) / (2 * h)
                XCTAssertEqual(score[i], fd, accuracy: 1e-6 * norm, "σ=\(sigma) i=\(i)")
            }
        }
    }

    /// Exact draws have the closed-form moments: FD(8000 draws, exact) below 0.02·tr Σ (d = 8; the finite-sample
    /// bias alone is about tr Σ·d/n ≈ 0.001·tr Σ).
    func testExactDrawsMatchMoments() throws {
        let tb = LowRankGaussianMixture(LowRankMixtureSpec(dimension: 8, components: 3, rank: 2, seed: 5))
        let x = tb.sample(count: 8000, seed: 1)
        let exact = GaussianMoments(mean: tb.dataMean(), covariance: tb.dataCovariance())
        let fd = try FrechetDistance.samples(x, dimension: 8, against: exact)
        var tr = 0.0
        for i in 0..<8 { tr += exact.covariance[i * 8 + i] }
        XCTAssertLessThan(fd, 0.02 * tr)
    }

    /// The σ-step recovers the true level: x = x₀ + σ_k·z with x₀ an exact draw, d = 3072 (CIFAR size). The
    /// estimate's spread is about 1/√(2d) in log σ ≈ 1.5 levels, so |k̂ − k| ≤ 8 per sample (≈5 s.d.), and the mean
    /// error over 8 samples is within ±3 levels. Level 0 is pure noise at σ_max = 50.
    func testSigmaStepRecoversTrueLevel() {
        let d = 3072
        let tb = LowRankGaussianMixture(LowRankMixtureSpec(dimension: d, components: 3, rank: 4, seed: 3), levelSigmaMax: 50)
        let n = 8
        for k in [0, 150, 500, 850, 980] {
            let sigma = tb.levels[k]
            let x0 = tb.sample(count: n, seed: UInt64(k))
            var g = Xoshiro256(seed: UInt64(100 + k))
            let x = x0.map { $0 + Float(sigma * g.normal()) }
            var idx = [Int](repeating: -1, count: n)
            tb.mostLikelyLevel(x, batch: n, into: &idx)
            for i in idx { XCTAssertLessThanOrEqual(abs(i - k), 8, "level \(k) (σ=\(sigma)): got \(idx)") }
            let meanErr = Double(idx.reduce(0) { $0 + ($1 - k) }) / Double(n)
            XCTAssertLessThanOrEqual(abs(meanErr), 3, "level \(k): mean error \(meanErr)")
        }
    }

    /// The banded argmax of `mostLikelyLevel` equals the brute-force argmax over all 1000 levels of
    /// `levelLogLikelihoods` (exactly), including on off-manifold Langevin-like states and with 16 samples (2 workers).
    func testBandedArgmaxIsExact() {
        let tb = LowRankGaussianMixture(LowRankMixtureSpec(dimension: 32, components: 5, rank: 3, seed: 8))
        let n = 16
        var g = Xoshiro256(seed: 12)
        let x0 = tb.sample(count: n, seed: 3)
        let x = x0.enumerated().map { i, v in v + Float((0.01 + Double(i % 7)) * g.normal()) }
        var idx = [Int](repeating: -1, count: n)
        tb.mostLikelyLevel(x, batch: n, into: &idx)
        var all = [Double](repeating: 0, count: n * 1000)
        tb.levelLogLikelihoods(x, batch: n, into: &all)
        for b in 0..<n {
            let row = all[(b * 1000)..<((b + 1) * 1000)]
            let brute = row.indices.max { row[$0] < row[$1] }! - b * 1000
            XCTAssertEqual(idx[b], brute, "sample \(b)")
        }
    }

    /// The Float32 `Denoiser` face agrees with the float64 core to Float32 precision (relative 1e-6).
    func testFloatFaceMatchesDoubleCore() {
        let tb = LowRankGaussianMixture(LowRankMixtureSpec(dimension: 16, components: 4, rank: 3, seed: 2))
        let x = tb.sample(count: 3, seed: 9)
        let sig: [Double] = [0.05, 1, 20]
        var out = [Float](repeating: 0, count: 48), out64 = [Double](repeating: 0, count: 48)
        tb.denoise(x, sigma: sig, batch: 3, into: &out)
        tb.denoise64(x.map(Double.init), sigma: sig, batch: 3, into: &out64)
        for (a, b) in zip(out, out64) { XCTAssertEqual(Double(a), b, accuracy: 1e-6 * max(1, abs(b))) }
    }
}
