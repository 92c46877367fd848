import XCTest
@testable import Metrics

final class LatencyStatsTests: XCTestCase {
    /// Values 1, 2, …, 1000 ms: the exact order statistics are p50 = 500, p90 = 900, p99 = 990 ms. HdrHistogram with
    /// 3 significant digits returns the bucket's highest equivalent value: within 0.1% of the exact value.
    func testPercentilesMeanAndThroughput() {
        var r = LatencyRecorder()
        for i in (1...1000).reversed() { r.record(nanoseconds: UInt64(i) * 1_000_000) }
        let s = r.summary(wallSeconds: 10, itemsPerQuery: 2)
        XCTAssertEqual(s.count, 1000)
        XCTAssertEqual(s.p50Ms, 500, accuracy: 0.5)
        XCTAssertEqual(s.p90Ms, 900, accuracy: 0.9)
        XCTAssertEqual(s.p99Ms, 990, accuracy: 0.99)
        XCTAssertEqual(s.minMs, 1)          // exact
        XCTAssertEqual(s.maxMs, 1000)       // exact
        XCTAssertEqual(s.meanMs, 500.5, accuracy: 1e-9)
        XCTAssertEqual(s.queriesPerSecond, 100, accuracy: 1e-9)
        XCTAssertEqual(s.itemsPerSecond, 200, accuracy: 1e-9)

        // Without a wall time, queries are taken back to back: 1000 queries in Σ = 500.5 s.
        let serial = r.summary()
        XCTAssertEqual(serial.wallSeconds, 500.5, accuracy: 1e-9)
        XCTAssertEqual(serial.queriesPerSecond, 1000 / 500.5, accuracy: 1e-12)
    }

    func testMergeSecondsAndClamping() {
        var a = LatencyRecorder(highestTrackableSeconds: 1)
        a.record(seconds: 0.25)
        var b = LatencyRecorder(highestTrackableSeconds: 1)
        b.record(seconds: 2.0)        // above range: clamped into the histogram, exact in max/mean
        a.merge(b)
        XCTAssertEqual(a.count, 2)
        XCTAssertEqual(a.clamped, 1)
        let s = a.summary()
        XCTAssertEqual(s.maxMs, 2000)
        XCTAssertEqual(s.meanMs, 1125, accuracy: 1e-9)
        XCTAssertEqual(s.p50Ms, 250, accuracy: 0.25)
    }

    func testEmptySummaryIsZeros() {
        let s = LatencyRecorder().summary()
        XCTAssertEqual(s.count, 0)
        XCTAssertEqual(s.p99Ms, 0)
        XCTAssertEqual(s.queriesPerSecond, 0)
    }

    func testMeasureRecordsOneValue() {
        var r = LatencyRecorder()
        let v = r.measure { 21 * 2 }
        XCTAssertEqual(v, 42)
        XCTAssertEqual(r.count, 1)
    }
}
