import Foundation
import XCTest
@testable import Metrics
import Tensor

/// Quantiles, spread and bootstrap intervals against numpy (tools/stats_fixture.py) and closed forms.
final class StatisticsTests: XCTestCase {
    /// Type-7 quantiles, IQR and MAD equal numpy's `quantile(method="linear")` / `median` to 1e-12 relative
    /// (both are the same interpolation in float64; differences are round-off).
    func testQuantilesSpreadMatchNumpy() {
        for set in StatisticsFixture.sets {
            for (p, want) in zip(StatisticsFixture.ps, set.quantiles) {
                XCTAssertEqual(quantile(set.values, p), want, accuracy: 1e-12 * max(1, abs(want)), "\(set.name) p=\(p)")
            }
            let s = Spread(set.values)
            XCTAssertEqual(s.iqr, set.iqr, accuracy: 1e-12 * max(1, set.iqr), set.name)
            XCTAssertEqual(s.mad, set.mad, accuracy: 1e-12 * max(1, set.mad), set.name)
        }
        XCTAssertEqual(median([4, 1, 3, 2]), 2.5)
        XCTAssertEqual(median([7]), 7)
        XCTAssertTrue(median([]).isNaN)
    }

    /// Exact bootstrap distribution of the median for odd n and distinct values x₍₁₎ < … < x₍ₙ₎: the resampled
    /// median is x₍ₖ₎ or lower iff at least m = (n+1)/2 of the n draws are ≤ x₍ₖ₎, so
    ///   P(M* ≤ x₍ₖ₎) = P(Binomial(n, k/n) ≥ m).
    /// With B = 20000 replicates the empirical CDF is within 4 standard errors (√(F(1−F)/B) ≤ 0.0036, so ≤ 0.015).
    func testBootstrapMedianAgainstExactBinomialDistribution() {
        let values = StatisticsFixture.sets.first { $0.name == "odd" }!.values  // n = 7, distinct
        let n = values.count, m = (n + 1) / 2
        let sorted = values.sorted()
        func exactCDF(_ k: Int) -> Double {  // k = 1…n
            let p = Double(k) / Double(n)
            var total = 0.0
            for j in m...n { total += binomial(n, j) * pow(p, Double(j)) * pow(1 - p, Double(n - j)) }
            return total
        }
        let b = 20_000
        let reps = Bootstrap.replicates(count: n, resamples: b, seed: 7) { idx in median(idx.map { values[$0] }) }
        for k in 1...n {
            let empirical = Double(reps.filter { $0 <= sorted[k - 1] }.count) / Double(b)
            let f = exactCDF(k)
            XCTAssertEqual(empirical, f, accuracy: 4 * (f * (1 - f) / Double(b)).squareRoot() + 1e-3, "k=\(k)")
        }
        // The 95% percentile interval's ends lie at (or next to) the exact distribution's 2.5% and 97.5% points.
        let kLow = (1...n).first { exactCDF($0) >= 0.025 }!, kHigh = (1...n).first { exactCDF($0) >= 0.975 }!
        let ci = Bootstrap.medianInterval(values)
        XCTAssertGreaterThanOrEqual(ci.lower, sorted[max(kLow - 2, 0)])
        XCTAssertLessThanOrEqual(ci.lower, sorted[min(kLow, n - 1)])
        XCTAssertGreaterThanOrEqual(ci.upper, sorted[max(kHigh - 2, 0)])
        XCTAssertLessThanOrEqual(ci.upper, sorted[min(kHigh, n - 1)])
        XCTAssertTrue(ci.contains(median(values)))
    }

    /// Seeded: the same input gives the same interval; another seed may differ but stays a valid interval. The
    /// counting shortcut of `medianInterval` equals the direct route (resample, take the median) draw for draw.
    func testBootstrapIsDeterministic() {
        for set in StatisticsFixture.sets {
            let direct = Bootstrap.replicates(count: set.values.count, resamples: 500, seed: 3) { idx in median(idx.map { set.values[$0] }) }
            let ci = Bootstrap.medianInterval(set.values, resamples: 500, seed: 3)
            XCTAssertEqual(ci.lower, Quantiles.ofSorted(direct, 0.025), accuracy: 1e-12, set.name)
            XCTAssertEqual(ci.upper, Quantiles.ofSorted(direct, 0.975), accuracy: 1e-12, set.name)
        }
        let v = StatisticsFixture.sets.first { $0.name == "lognormal" }!.values
        XCTAssertEqual(Bootstrap.medianInterval(v), Bootstrap.medianInterval(v))
        let other = Bootstrap.medianInterval(v, seed: 99)
        XCTAssertLessThanOrEqual(other.lower, other.upper)
        XCTAssertEqual(other.seed, 99)
    }

    /// Median of paired ratios equals numpy's (1e-12 relative); the interval covers it; a constant ratio has a
    /// zero-width interval (every resample's median is that constant).
    func testPairedRatio() {
        let r = Bootstrap.pairedRatio(StatisticsFixture.pairedA, StatisticsFixture.pairedB)
        XCTAssertEqual(r.ratio, StatisticsFixture.pairedMedianRatio, accuracy: 1e-12 * StatisticsFixture.pairedMedianRatio)
        XCTAssertTrue(r.interval.contains(r.ratio))
        XCTAssertGreaterThan(r.interval.lower, 2.0)   // every pair's ratio lies in (2.0, 2.6) by construction
        XCTAssertLessThan(r.interval.upper, 2.6)
        let b = StatisticsFixture.pairedB
        let c = Bootstrap.pairedRatio(b.map { 3 * $0 }, b)
        XCTAssertEqual(c.ratio, 3, accuracy: 1e-12)
        XCTAssertEqual(c.interval.lower, 3, accuracy: 1e-12)
        XCTAssertEqual(c.interval.upper, 3, accuracy: 1e-12)
    }

    /// Unpaired ratio of medians: the estimate is median(b)/median(a) exactly; constant samples give a point interval.
    func testRatioOfMedians() {
        let a = StatisticsFixture.pairedA, b = StatisticsFixture.pairedB
        let r = Bootstrap.ratioOfMedians(b, over: a)
        XCTAssertEqual(r.ratio, median(b) / median(a), accuracy: 1e-15)
        XCTAssertTrue(r.interval.contains(r.ratio))
        let p = Bootstrap.ratioOfMedians([5, 5, 5], over: [2, 2])
        XCTAssertEqual(p.ratio, 2.5)
        XCTAssertEqual(p.interval.lower, 2.5)
        XCTAssertEqual(p.interval.upper, 2.5)
    }

    private func binomial(_ n: Int, _ k: Int) -> Double {
        var r = 1.0
        for i in 0..<k { r = r * Double(n - i) / Double(i + 1) }
        return r
    }
}

/// The FD bootstrap: positive by construction.
final class FrechetBootstrapTests: XCTestCase {
    /// Samples measured against their own moments: FD = 0 (1e-9, round-off of the eigen-decompositions); every
    /// resample's FD is ≥ 0, so the plain percentile interval is > 0 and the bias-shifted one starts at exactly 0.
    func testIntervalIsNonNegativeAndSeeded() throws {
        var x = [Float]()
        var s: UInt64 = 12345
        for _ in 0..<(60 * 3) {
            s = s &* 6364136223846793005 &+ 1442695040888963407
            x.append(Float(Double(s >> 11) / Double(1 << 53)) * 2 - 1)
        }
        let ref = GaussianMoments(samples: x, dimension: 3)
        var g1 = SplitMix64(seed: 5), g2 = SplitMix64(seed: 5)
        let e = try FrechetBootstrap.estimate(x, dimension: 3, reference: ref, resamples: 100, using: &g1)
        XCTAssertEqual(e.value, 0, accuracy: 1e-9)
        XCTAssertGreaterThan(e.percentileLower, 0)
        XCTAssertLessThanOrEqual(e.percentileLower, e.percentileUpper)
        XCTAssertEqual(e.lower, 0)
        XCTAssertGreaterThan(e.upper, 0)
        XCTAssertEqual(try FrechetBootstrap.estimate(x, dimension: 3, reference: ref, resamples: 100, using: &g2), e)
    }
}

