// The one quantile implementation of moebench: linear interpolation between order statistics (Hyndman & Fan
// type 7, numpy's default `method="linear"`). For n sorted values x₀ ≤ … ≤ x₍ₙ₋₁₎ and p ∈ [0, 1]:
//   h = (n − 1)·p,  Q(p) = x⌊h⌋ + (h − ⌊h⌋)·(x⌊h⌋₊₁ − x⌊h⌋)
// so Q(0) = min, Q(1) = max, Q(0.5) = the usual median (mean of the two middle values for even n).
// Empty input gives NaN; NaN values are the caller's problem (they sort unpredictably).

public enum Quantiles {
    /// Q(p) of values already sorted ascending.
    @inlinable
    public static func ofSorted(_ s: [Double], _ p: Double) -> Double {
        precondition(p >= 0 && p <= 1, "quantile: p must be in [0, 1], got \(p)")
        guard !s.isEmpty else { return .nan }
        let h = Double(s.count - 1) * p
        let lo = Int(h.rounded(.down)), hi = Swift.min(lo + 1, s.count - 1)
        return s[lo] + (h - Double(lo)) * (s[hi] - s[lo])
    }

    /// Q(p) of unsorted values.
    public static func of(_ values: [Double], _ p: Double) -> Double { ofSorted(values.sorted(), p) }
}

/// The median (type-7 Q(0.5)); NaN for no values.
public func median(_ values: [Double]) -> Double { Quantiles.of(values, 0.5) }

/// Q(p) for p ∈ [0, 1] (type 7); NaN for no values.
public func quantile(_ values: [Double], _ p: Double) -> Double { Quantiles.of(values, p) }

/// Spread around the median: the quartiles, the interquartile range Q(0.75) − Q(0.25), and the median absolute
/// deviation median(|xᵢ − median|) (unscaled: not multiplied by 1.4826). Units are the values' units.
public struct Spread: Codable, Equatable, Sendable {
    public var q1: Double
    public var q3: Double
    public var iqr: Double
    public var mad: Double

    public init(q1: Double, q3: Double, iqr: Double, mad: Double) {
        self.q1 = q1; self.q3 = q3; self.iqr = iqr; self.mad = mad
    }

    public init(_ values: [Double]) {
        let s = values.sorted()
        q1 = Quantiles.ofSorted(s, 0.25)
        q3 = Quantiles.ofSorted(s, 0.75)
        iqr = q3 - q1
        let m = Quantiles.ofSorted(s, 0.5)
        mad = median(s.map { abs($0 - m) })
    }
}
