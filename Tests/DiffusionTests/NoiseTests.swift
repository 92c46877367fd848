import XCTest
@testable import Diffusion

/// The ziggurat Float32 normals: 400k draws. Tolerances (≈5 standard errors): mean ±0.01, variance ±0.01,
/// kurtosis 3 ± 0.05, P(|z| > 2) = 0.0455 ± 0.0017, P(|z| > 3.4426) (the ziggurat's tail strip) = 5.76e-4 ± 2e-4.
final class NoiseTests: XCTestCase {
    func testZigguratMoments() {
        let n = 400_000
        var z = [Float](repeating: 0, count: n)
        SeededNormalNoise(seed: 77).fillNormal(&z, count: n)
        var m = 0.0, v = 0.0, k4 = 0.0, over2 = 0, overR = 0
        for x in z { m += Double(x) }
        m /= Double(n)
        for x in z {
            let t = Double(x) - m
            v += t * t; k4 += t * t * t * t
            if abs(x) > 2 { over2 += 1 }
            if abs(Double(x)) > Ziggurat.r { overR += 1 }
        }
        v /= Double(n); k4 = k4 / Double(n) / (v * v)
        XCTAssertEqual(m, 0, accuracy: 0.01)
        XCTAssertEqual(v, 1, accuracy: 0.01)
        XCTAssertEqual(k4, 3, accuracy: 0.05)
        XCTAssertEqual(Double(over2) / Double(n), 0.0455, accuracy: 0.0017)
        XCTAssertEqual(Double(overR) / Double(n), 5.76e-4, accuracy: 2e-4)
    }

    /// Same seed, same noise; different seeds differ.
    func testSeeded() {
        var a = [Float](repeating: 0, count: 100), b = a, c = a
        SeededNormalNoise(seed: 1).fillNormal(&a, count: 100)
        SeededNormalNoise(seed: 1).fillNormal(&b, count: 100)
        SeededNormalNoise(seed: 2).fillNormal(&c, count: 100)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
    }
}
