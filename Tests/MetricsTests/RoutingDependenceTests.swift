import Metrics
import XCTest

/// Mutual information of expert choice and a factor against closed forms, and the permutation test's behaviour.
final class RoutingDependenceTests: XCTestCase {
    /// Expert fully determined by the factor (4 values ↔ 4 experts, equal counts): I = H(E) = 2 bits, p minimal.
    func testDeterministicRoutingHasFullInformation() {
        var t = [Double](repeating: 0, count: 16)
        for r in 0..<4 { t[r * 4 + r] = 50 }
        let dep = RoutingDependence(factor: "step", layer: 0, table: t, rows: 4, experts: 4, permutations: 99)
        XCTAssertEqual(dep.mutualInformationBits, 2, accuracy: 1e-12)
        XCTAssertEqual(dep.expertEntropyBits, 2, accuracy: 1e-12)
        XCTAssertEqual(dep.normalized, 1, accuracy: 1e-12)
        XCTAssertEqual(dep.pValue, 0.01, accuracy: 1e-12)
        XCTAssertGreaterThan(dep.excess, 0.9)
    }

    /// An exact outer product p(f)·p(e) has I = 0; the permutation null is small and p is large.
    func testIndependentTableHasNoInformation() {
        let pf: [Double] = [1, 2, 3], pe: [Double] = [10, 20, 30, 40]
        let t = pf.flatMap { f in pe.map { f * $0 } }
        let dep = RoutingDependence(factor: "class", layer: 1, table: t, rows: 3, experts: 4, permutations: 99)
        XCTAssertEqual(dep.mutualInformationBits, 0, accuracy: 1e-12)
        XCTAssertGreaterThan(dep.pValue, 0.5)
        XCTAssertLessThan(dep.excess, 0.01)
        // Plug-in bias under independence ≈ (F−1)(E−1)/(2N ln 2) bits with N = 600.
        let bias: Double = 6.0 / (1200.0 * log(2.0))
        XCTAssertEqual(dep.nullMean, bias, accuracy: 0.5 * bias)
    }

    /// A 2×2 table with p(e | f) = (0.9, 0.1) and (0.1, 0.9), equal rows: I = 1 − H₂(0.1) bits.
    func testBinaryChannelClosedForm() {
        let t: [Double] = [900, 100, 100, 900]
        let dep = RoutingDependence(factor: "position", layer: nil, table: t, rows: 2, experts: 2, permutations: 0)
        let h = -(0.1 * log2(0.1) + 0.9 * log2(0.9))
        XCTAssertEqual(dep.mutualInformationBits, 1 - h, accuracy: 1e-12)
        XCTAssertEqual(dep.pValue, 1)
    }
}
