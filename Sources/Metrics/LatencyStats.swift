// Latency recording over HdrHistogram (3 significant digits: every percentile is within 0.1% of the exact order
// statistic's value). Values are recorded in nanoseconds; summaries are in milliseconds.
import Foundation
import Histogram

public struct LatencyRecorder: Sendable {
    private var histogram: Histogram<UInt64>
    /// Exact sum, min and max of the recorded values (ns); the histogram only holds bucketed values.
    public private(set) var sumNanoseconds: Double = 0
    public private(set) var minNanoseconds: UInt64 = .max
    public private(set) var maxNanoseconds: UInt64 = 0

    /// `highestTrackableSeconds`: larger values are clamped to it (and counted in `clamped`).
    public init(highestTrackableSeconds: Double = 3600) {
        let highest = UInt64(highestTrackableSeconds * 1e9)
        histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: max(highest, 2),
                                      numberOfSignificantValueDigits: .three)
    }

    /// Values above the histogram's range, recorded at the range's top.
    public private(set) var clamped: UInt64 = 0

    public var count: UInt64 { histogram.totalCount }

    public mutating func record(nanoseconds: UInt64) {
        var v = nanoseconds
        if v > histogram.highestTrackableValue {
            clamped += 1
            v = histogram.highestTrackableValue
        }
        histogram.record(v)
        sumNanoseconds += Double(nanoseconds)
        minNanoseconds = min(minNanoseconds, nanoseconds)
        maxNanoseconds = max(maxNanoseconds, nanoseconds)
    }

    public mutating func record(seconds: Double) {
        record(nanoseconds: UInt64(max(0, seconds * 1e9).rounded()))
    }

    /// Times `body` with a monotonic clock and records its duration.
    @discardableResult
    public mutating func measure<T>(_ body: () throws -> T) rethrows -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        let result = try body()
        record(nanoseconds: DispatchTime.now().uptimeNanoseconds &- start)
        return result
    }

    public mutating func merge(_ other: LatencyRecorder) {
        histogram.add(other.histogram)
        sumNanoseconds += other.sumNanoseconds
        minNanoseconds = min(minNanoseconds, other.minNanoseconds)
        maxNanoseconds = max(maxNanoseconds, other.maxNanoseconds)
        clamped += other.clamped
    }

    /// Value (ms) at a percentile in [0, 100] from the histogram.
    public func percentileMs(_ p: Double) -> Double {
        Double(histogram.valueAtPercentile(p)) / 1e6
    }

    /// Summary. `wallSeconds`: elapsed time of the whole measured run (for throughput); if nil, the sum of the
    /// latencies is used (right for a single stream: queries back to back). `itemsPerQuery`: images per query.
    public func summary(wallSeconds: Double? = nil, itemsPerQuery: Int = 1) -> LatencySummary {
        let n = histogram.totalCount
        let wall = wallSeconds ?? sumNanoseconds / 1e9
        return LatencySummary(
            count: Int(n),
            p50Ms: n > 0 ? percentileMs(50) : 0,
            p90Ms: n > 0 ? percentileMs(90) : 0,
            p99Ms: n > 0 ? percentileMs(99) : 0,
            p999Ms: n > 0 ? percentileMs(99.9) : 0,
            minMs: n > 0 ? Double(minNanoseconds) / 1e6 : 0,
            maxMs: Double(maxNanoseconds) / 1e6,
            meanMs: n > 0 ? sumNanoseconds / Double(n) / 1e6 : 0,
            wallSeconds: wall,
            queriesPerSecond: wall > 0 ? Double(n) / wall : 0,
            itemsPerSecond: wall > 0 ? Double(n) * Double(itemsPerQuery) / wall : 0)
    }
}

/// Latency summary in milliseconds; throughput per second of wall time.
public struct LatencySummary: Codable, Equatable, Sendable {
    public var count: Int
    public var p50Ms: Double
    public var p90Ms: Double
    public var p99Ms: Double
    public var p999Ms: Double
    /// Exact (not bucketed) minimum, maximum and mean.
    public var minMs: Double
    public var maxMs: Double
    public var meanMs: Double
    public var wallSeconds: Double
    public var queriesPerSecond: Double
    /// queriesPerSecond × images per query.
    public var itemsPerSecond: Double
}
