import XCTest
@testable import Metrics

final class FrechetDistanceTests: XCTestCase {
    /// FD of a sample set with itself is 0 up to round-off: |FD| ≤ 1e-9·tr Σ.
    func testIdenticalInputsGiveZero() throws {
        let a = FrechetFixture.samplesA, d = FrechetFixture.sampleDimension
        let m = GaussianMoments(samples: a, dimension: d)
        let fd = try FrechetDistance.samples(a, a, dimension: d)
        var tr = 0.0
        for i in 0..<d { tr += m.covariance[i * d + i] }
        XCTAssertLessThan(abs(fd), 1e-9 * tr)
        XCTAssertEqual(m.sampleCount, FrechetFixture.sampleCount)
    }

    /// Sample-versus-sample FD matches numpy/scipy (np.cov, sqrtm): relative 1e-9.
    func testSamplesMatchScipy() throws {
        let fd = try FrechetDistance.samples(FrechetFixture.samplesA, FrechetFixture.samplesB,
                                             dimension: FrechetFixture.sampleDimension)
        XCTAssertEqual(fd, FrechetFixture.samplesFD, accuracy: 1e-9 * FrechetFixture.samplesFD)
    }

    /// FD between two explicit non-commuting Gaussians matches scipy: relative 1e-9.
    func testGaussiansMatchScipy() throws {
        let a = GaussianMoments(mean: FrechetFixture.mean1, covariance: FrechetFixture.cov1)
        let b = GaussianMoments(mean: FrechetFixture.mean2, covariance: FrechetFixture.cov2)
        let fd = try FrechetDistance.between(a, b)
        XCTAssertEqual(fd, FrechetFixture.gaussFD, accuracy: 1e-9 * FrechetFixture.gaussFD)
        XCTAssertEqual(try FrechetDistance.between(b, a), fd, accuracy: 1e-9 * fd)   // symmetric
    }

    /// Closed form for 2×2 non-commuting covariances: tr √(Σ₁Σ₂) = √(tr(Σ₁Σ₂) + 2√det(Σ₁Σ₂)). Relative 1e-12.
    func testTwoByTwoClosedForm() throws {
        let s1: [Double] = [2.0, 0.6, 0.6, 0.5], s2: [Double] = [0.3, -0.2, -0.2, 1.7]
        let mu1: [Double] = [1, -1], mu2: [Double] = [0.5, 2]
        let p00 = s1[0] * s2[0] + s1[1] * s2[2], p11 = s1[2] * s2[1] + s1[3] * s2[3]
        let det1 = s1[0] * s1[3] - s1[1] * s1[2], det2 = s2[0] * s2[3] - s2[1] * s2[2]
        let trRoot = (p00 + p11 + 2 * (det1 * det2).squareRoot()).squareRoot()
        let expected = 0.25 + 9 + (s1[0] + s1[3]) + (s2[0] + s2[3]) - 2 * trRoot
        let fd = try FrechetDistance.between(GaussianMoments(mean: mu1, covariance: s1),
                                             GaussianMoments(mean: mu2, covariance: s2))
        XCTAssertEqual(fd, expected, accuracy: 1e-12 * expected)
    }

    /// Commuting (diagonal) covariances: FD = ‖Δμ‖² + Σ(√a_i − √b_i)². d = 40, absolute 1e-10.
    func testDiagonalClosedForm() throws {
        let d = 40
        var ca = [Double](repeating: 0, count: d * d), cb = ca
        var expected = 0.0
        var ma = [Double](), mb = [Double]()
        for i in 0..<d {
            let a = 0.1 + Double(i) * 0.05, b = 2.0 / Double(i + 1)
            ca[i * d + i] = a; cb[i * d + i] = b
            expected += (a.squareRoot() - b.squareRoot()) * (a.squareRoot() - b.squareRoot())
            ma.append(Double(i) * 0.01); mb.append(0)
            expected += Double(i) * 0.01 * Double(i) * 0.01
        }
        let fd = try FrechetDistance.between(GaussianMoments(mean: ma, covariance: ca), GaussianMoments(mean: mb, covariance: cb))
        XCTAssertEqual(fd, expected, accuracy: 1e-10)
    }

    /// Rank-deficient sample covariance (n < d): real, finite, non-negative FD (eigenvalues clamped, never complex).
    func testRankDeficientStaysReal() throws {
        let d = 10, n = 4
        let x = (0..<(n * d)).map { Float(sin(Double($0) * 1.7)) }
        let exact = GaussianMoments(mean: [Double](repeating: 0, count: d),
                                    covariance: (0..<(d * d)).map { $0 % (d + 1) == 0 ? 1.0 : 0.0 })
        let fd = try FrechetDistance.samples(x, dimension: d, against: exact)
        XCTAssertTrue(fd.isFinite)
        XCTAssertGreaterThan(fd, 0)
    }

    /// The symmetric square root squares back to the matrix: max abs error 1e-12.
    func testSymmetricSqrtSquaresBack() throws {
        let a = FrechetFixture.cov1, n = FrechetFixture.gaussDimension
        let r = try symmetricSqrt(a, dimension: n)
        for i in 0..<n {
            for j in 0..<n {
                var s = 0.0
                for k in 0..<n { s += r[i * n + k] * r[k * n + j] }
                XCTAssertEqual(s, a[i * n + j], accuracy: 1e-12)
            }
        }
    }
}
