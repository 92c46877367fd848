import Foundation
import XCTest
@testable import Metrics

final class LatencyStatsTests: XCTestCase {
    /// Values 1, 2, …, 1000 ms (recorded in reverse): type-7 quantiles are exact closed forms, h = 999·p:
    /// median = 500.5, p90 = 900.1 (h = 899.1), p99 = 990.01 (h = 989.01); quartiles 250.75 / 750.25. The summary
    /// computes from the exact durations, so the tolerance is round-off (1e-9 ms).
    func testStatisticsAreExactOrderStatistics() {
        var r = LatencyRecorder()
        for i in (1...1000).reversed() { r.record(nanoseconds: UInt64(i) * 1_000_000) }
        let s = r.summary(wallSeconds: 10, itemsPerQuery: 2)
        XCTAssertEqual(s.count, 1000)
        XCTAssertEqual(s.medianMs, 500.5, accuracy: 1e-9)
        XCTAssertEqual(s.q1Ms, 250.75, accuracy: 1e-9)
        XCTAssertEqual(s.q3Ms, 750.25, accuracy: 1e-9)
        XCTAssertEqual(s.iqrMs, 499.5, accuracy: 1e-9)
        XCTAssertEqual(s.madMs, 250, accuracy: 1e-9)   // |i − 500.5| for i = 1…1000: median of 0.5…499.5 twice
        XCTAssertEqual(s.p90Ms!, 900.1, accuracy: 1e-9)
        XCTAssertEqual(s.p99Ms!, 990.01, accuracy: 1e-9)
        XCTAssertNil(s.p999Ms)                          // needs 10000 queries
        XCTAssertEqual(s.omitted, ["p99.9: needs ≥ 10000 queries, have 1000"])
        XCTAssertEqual(s.minMs, 1)
        XCTAssertEqual(s.maxMs, 1000)
        XCTAssertEqual(s.meanMs, 500.5, accuracy: 1e-9)
        XCTAssertEqual(s.queriesPerSecond, 100, accuracy: 1e-9)
        XCTAssertEqual(s.itemsPerSecond, 200, accuracy: 1e-9)
        XCTAssertEqual(s.samplesMs?.count, 1000)
        XCTAssertEqual(s.samplesMs?.first, 1000)        // recording order

        // Without a wall time, queries are taken back to back: 1000 queries in Σ = 500.5 s.
        let serial = r.summary()
        XCTAssertEqual(serial.wallSeconds, 500.5, accuracy: 1e-9)
        XCTAssertEqual(serial.queriesPerSecond, 1000 / 500.5, accuracy: 1e-12)
    }

    /// Three queries: no tail percentile and no interval, each with its reason; absent (not null, not 0) in JSON.
    func testFewQueriesLeaveTailsOutOfTheJSON() throws {
        let s = LatencySummary(milliseconds: [3, 1, 2])
        XCTAssertEqual(s.medianMs, 2)
        XCTAssertNil(s.p90Ms)
        XCTAssertNil(s.p99Ms)
        XCTAssertNil(s.medianInterval)
        XCTAssertEqual(s.omitted, ["median interval: needs ≥ 5 queries, have 3", "p90: needs ≥ 100 queries, have 3",
                                   "p99: needs ≥ 1000 queries, have 3", "p99.9: needs ≥ 10000 queries, have 3"])
        let json = String(decoding: try JSONEncoder().encode(s), as: UTF8.self)
        XCTAssertFalse(json.contains("p90Ms"))
        XCTAssertFalse(json.contains("medianInterval"))
        XCTAssertEqual(try JSONDecoder().decode(LatencySummary.self, from: Data(json.utf8)), s)
    }

    /// The rule n ≥ 10 / (1 − p): closed form.
    func testTailPolicy() {
        XCTAssertEqual(TailPolicy.minimumCount(percentile: 50), 20)
        XCTAssertEqual(TailPolicy.minimumCount(percentile: 90), 100)
        XCTAssertEqual(TailPolicy.minimumCount(percentile: 99), 1000)
        XCTAssertEqual(TailPolicy.minimumCount(percentile: 99.9), 10000)
    }

    func testMergeSecondsAndEmpty() {
        var a = LatencyRecorder()
        a.record(seconds: 0.25)
        var b = LatencyRecorder()
        b.record(seconds: 2.0)
        a.merge(b)
        XCTAssertEqual(a.count, 2)
        let s = a.summary()
        XCTAssertEqual(s.maxMs, 2000)
        XCTAssertEqual(s.meanMs, 1125, accuracy: 1e-9)
        XCTAssertEqual(s.medianMs, 1125, accuracy: 1e-9)

        let e = LatencyRecorder().summary()
        XCTAssertEqual(e.count, 0)
        XCTAssertEqual(e.medianMs, 0)
        XCTAssertNil(e.p99Ms)
        XCTAssertEqual(e.queriesPerSecond, 0)
    }

    func testMeasureRecordsOneValue() {
        var r = LatencyRecorder()
        let v = r.measure { 21 * 2 }
        XCTAssertEqual(v, 42)
        XCTAssertEqual(r.count, 1)
    }
}
