// Latency recording and its summary. Every duration is kept (nanoseconds, exact), and every statistic is computed
// from the exact values with the one quantile implementation (Quantiles.swift): the median, its spread (quartiles,
// IQR, MAD), a seeded bootstrap interval of the median, and tail percentiles only where there are enough queries
// to estimate them (TailPolicy). Summaries are in milliseconds.
import Foundation

/// When a tail percentile means something: the p-th percentile is reported only when at least
/// `observationsBeyond` = 10 queries lie above it, i.e. n ≥ 10 / (1 − p/100): p90 needs 100 queries, p99 1000,
/// p99.9 10000 (MLPerf LoadGen sizes its runs by the same kind of rule). Below that the value would be one of the
/// last few order statistics — with 3 queries p90 = p99 = max.
public enum TailPolicy {
    public static let observationsBeyond = 10

    /// Fewest queries for percentile `p` (in percent, 0 < p < 100).
    public static func minimumCount(percentile p: Double) -> Int {
        precondition(p > 0 && p < 100, "percentile must be in (0, 100)")
        let x = Double(observationsBeyond) / (1 - p / 100)
        // Round-off in 1 − p/100 (e.g. 10 / (1 − 0.999) = 10000.000001) must not add a query.
        let r = x.rounded()
        return abs(x - r) <= 1e-6 * r ? Int(r) : Int(x.rounded(.up))
    }
}

public struct LatencyRecorder: Sendable {
    /// Every recorded duration (ns), in recording order.
    public private(set) var nanoseconds: [UInt64] = []

    public init() {}

    public var count: Int { nanoseconds.count }

    public mutating func record(nanoseconds v: UInt64) { nanoseconds.append(v) }

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

    public mutating func merge(_ other: LatencyRecorder) { nanoseconds += other.nanoseconds }

    /// The recorded durations in milliseconds, in recording order.
    public var milliseconds: [Double] { nanoseconds.map { Double($0) / 1e6 } }

    /// Summary. `wallSeconds`: elapsed time of the whole measured run (for throughput); if nil, the sum of the
    /// latencies is used (right for a single stream: queries back to back). `itemsPerQuery`: images per query.
    public func summary(wallSeconds: Double? = nil, itemsPerQuery: Int = 1) -> LatencySummary {
        LatencySummary(milliseconds: milliseconds, wallSeconds: wallSeconds, itemsPerQuery: itemsPerQuery)
    }
}

/// Latency summary in milliseconds; throughput per second of wall time. Optional fields are absent (not zero) when
/// there are too few queries; `omitted` says which and why.
public struct LatencySummary: Codable, Equatable, Sendable {
    /// Most raw latencies kept in `samplesMs` (the first ones recorded); statistics use all of them.
    public static let storedSampleLimit = 10_000

    public var count: Int
    public var medianMs: Double
    /// Quartiles, interquartile range and median absolute deviation (unscaled).
    public var q1Ms: Double
    public var q3Ms: Double
    public var iqrMs: Double
    public var madMs: Double
    /// 95% percentile-bootstrap interval of the median (BootstrapPolicy); absent below 5 queries.
    public var medianInterval: BootstrapInterval?
    /// Tail percentiles, present only with enough queries (TailPolicy).
    public var p90Ms: Double?
    public var p99Ms: Double?
    public var p999Ms: Double?
    /// Statistics left out, each with the reason, e.g. "p90: needs ≥ 100 queries, have 5".
    public var omitted: [String]
    public var minMs: Double
    public var maxMs: Double
    public var meanMs: Double
    public var wallSeconds: Double
    public var queriesPerSecond: Double
    /// queriesPerSecond × images per query.
    public var itemsPerSecond: Double
    /// The raw latencies in recording order (at most `storedSampleLimit`), for later comparisons between runs.
    public var samplesMs: [Double]?

    public init(milliseconds ms: [Double], wallSeconds: Double? = nil, itemsPerQuery: Int = 1) {
        let n = ms.count
        let sorted = ms.sorted()
        count = n
        medianMs = n > 0 ? Quantiles.ofSorted(sorted, 0.5) : 0  // an empty summary is all zeros
        let spread = n > 0 ? Spread(sorted) : Spread(q1: 0, q3: 0, iqr: 0, mad: 0)
        q1Ms = spread.q1; q3Ms = spread.q3; iqrMs = spread.iqr; madMs = spread.mad
        var omitted: [String] = []
        if n >= BootstrapPolicy.minimumCount {
            medianInterval = Bootstrap.medianInterval(ms)
        } else {
            omitted.append("median interval: needs ≥ \(BootstrapPolicy.minimumCount) queries, have \(n)")
        }
        func tail(_ p: Double, _ label: String) -> Double? {
            let need = TailPolicy.minimumCount(percentile: p)
            if n >= need { return Quantiles.ofSorted(sorted, p / 100) }
            omitted.append("\(label): needs ≥ \(need) queries, have \(n)")
            return nil
        }
        p90Ms = tail(90, "p90")
        p99Ms = tail(99, "p99")
        p999Ms = tail(99.9, "p99.9")
        self.omitted = omitted
        minMs = sorted.first ?? 0
        maxMs = sorted.last ?? 0
        let sum = ms.reduce(0, +)
        meanMs = n > 0 ? sum / Double(n) : 0
        let wall = wallSeconds ?? sum / 1000
        self.wallSeconds = wall
        queriesPerSecond = wall > 0 ? Double(n) / wall : 0
        itemsPerSecond = wall > 0 ? Double(n) * Double(itemsPerQuery) / wall : 0
        samplesMs = n > 0 ? Array(ms.prefix(Self.storedSampleLimit)) : nil
    }
}
