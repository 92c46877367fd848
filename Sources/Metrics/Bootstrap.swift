import Tensor

// Percentile bootstrap intervals, seeded and deterministic: the same values, statistic, resample count and seed
// give the same interval on every machine (SplitMix64 indices, no global random state).
//
// Percentile method: draw B resamples of the n values with replacement, compute the statistic on each, and report
// the (1 − c)/2 and (1 + c)/2 type-7 quantiles of the B results. For the median of continuous data the interval
// lies between order statistics of the data; with n < 5 it is too short to mean much (BootstrapPolicy).

public struct BootstrapInterval: Codable, Equatable, Sendable {
    public var lower: Double
    public var upper: Double
    /// Two-sided confidence level, e.g. 0.95.
    public var confidence: Double
    public var resamples: Int
    public var seed: UInt64

    public init(lower: Double, upper: Double, confidence: Double, resamples: Int, seed: UInt64) {
        self.lower = lower; self.upper = upper; self.confidence = confidence; self.resamples = resamples; self.seed = seed
    }

    public func contains(_ x: Double) -> Bool { x >= lower && x <= upper }
}

public enum BootstrapPolicy {
    /// Defaults used by the harness: 95%, 2000 resamples, a fixed seed.
    public static let confidence = 0.95
    public static let resamples = 2000
    /// Below 2⁵³, so the seed survives results.json's numbers (IEEE doubles) exactly.
    public static let seed: UInt64 = 0x6D6F_6562  // "moeb"
    /// Fewest values (or pairs) for which an interval is reported; below it the interval is absent.
    public static let minimumCount = 5
}

public enum Bootstrap {
    /// Uniform index in 0..<n from one 64-bit draw (multiply-high; bias ≤ n / 2⁶⁴).
    @inlinable
    static func index(_ rng: inout SplitMix64, _ n: Int) -> Int {
        Int(rng.next().multipliedFullWidth(by: UInt64(n)).high)
    }

    /// The B bootstrap replicates of `statistic` over resamples of `count` indices (each resample is a list of
    /// indices drawn with replacement), sorted ascending.
    public static func replicates(count n: Int, resamples: Int = BootstrapPolicy.resamples, seed: UInt64 = BootstrapPolicy.seed,
                                  statistic: ([Int]) -> Double) -> [Double] {
        precondition(n > 0 && resamples > 0, "bootstrap: need values and resamples")
        var rng = SplitMix64(seed: seed)
        var idx = [Int](repeating: 0, count: n), out = [Double]()
        out.reserveCapacity(resamples)
        for _ in 0..<resamples {
            for i in 0..<n { idx[i] = index(&rng, n) }
            out.append(statistic(idx))
        }
        return out.sorted()
    }

    static func interval(_ sortedReplicates: [Double], confidence: Double, resamples: Int, seed: UInt64) -> BootstrapInterval {
        let a = (1 - confidence) / 2
        return BootstrapInterval(lower: Quantiles.ofSorted(sortedReplicates, a), upper: Quantiles.ofSorted(sortedReplicates, 1 - a),
                                 confidence: confidence, resamples: resamples, seed: seed)
    }

    /// Percentile interval of the median of `values`. A resample is a multiset of indices into `values`, so its
    /// median is found by counting draws per index and walking the counts in the values' sorted order to the middle
    /// one(s): O(n) per resample, the same result (draw for draw) as sorting the resampled values.
    public static func medianInterval(_ values: [Double], confidence: Double = BootstrapPolicy.confidence,
                                      resamples: Int = BootstrapPolicy.resamples, seed: UInt64 = BootstrapPolicy.seed) -> BootstrapInterval {
        let n = values.count
        precondition(n > 0 && resamples > 0, "bootstrap: need values and resamples")
        let order = values.indices.sorted { values[$0] < values[$1] }
        var rng = SplitMix64(seed: seed)
        var counts = [Int](repeating: 0, count: n), reps = [Double]()
        reps.reserveCapacity(resamples)
        let lowRank = (n - 1) / 2, highRank = n / 2  // 0-based ranks of the middle value(s)
        for _ in 0..<resamples {
            for i in 0..<n { counts[i] = 0 }
            for _ in 0..<n { counts[index(&rng, n)] += 1 }
            var seen = 0, low = Double.nan, high = Double.nan
            for i in order where counts[i] > 0 {
                let next = seen + counts[i]
                if low.isNaN && lowRank < next { low = values[i] }
                if highRank < next { high = values[i]; break }
                seen = next
            }
            reps.append((low + high) / 2)
        }
        reps.sort()
        return interval(reps, confidence: confidence, resamples: resamples, seed: seed)
    }

    /// Paired ratio a/b: the median of the per-pair ratios aᵢ/bᵢ, with the percentile interval from resampling
    /// whole pairs (a pair measured back to back shares the machine's state, so drifts in load cancel in aᵢ/bᵢ).
    public static func pairedRatio(_ a: [Double], _ b: [Double], confidence: Double = BootstrapPolicy.confidence,
                                   resamples: Int = BootstrapPolicy.resamples, seed: UInt64 = BootstrapPolicy.seed)
        -> (ratio: Double, interval: BootstrapInterval) {
        precondition(a.count == b.count && !a.isEmpty, "pairedRatio: need the same number (> 0) of a and b values")
        let r = zip(a, b).map { $0 / $1 }
        return (median(r), medianInterval(r, confidence: confidence, resamples: resamples, seed: seed))
    }

    /// Unpaired ratio of medians median(b)/median(a) with the percentile interval from resampling a and b
    /// independently (for runs measured at different times, e.g. two results directories).
    public static func ratioOfMedians(_ b: [Double], over a: [Double], confidence: Double = BootstrapPolicy.confidence,
                                      resamples: Int = BootstrapPolicy.resamples, seed: UInt64 = BootstrapPolicy.seed)
        -> (ratio: Double, interval: BootstrapInterval) {
        precondition(!a.isEmpty && !b.isEmpty, "ratioOfMedians: need values on both sides")
        var rng = SplitMix64(seed: seed)
        var ba = [Double](repeating: 0, count: a.count), bb = [Double](repeating: 0, count: b.count), reps = [Double]()
        reps.reserveCapacity(resamples)
        for _ in 0..<resamples {
            for i in 0..<a.count { ba[i] = a[index(&rng, a.count)] }
            for i in 0..<b.count { bb[i] = b[index(&rng, b.count)] }
            reps.append(median(bb) / median(ba))
        }
        return (median(b) / median(a), interval(reps.sorted(), confidence: confidence, resamples: resamples, seed: seed))
    }
}
