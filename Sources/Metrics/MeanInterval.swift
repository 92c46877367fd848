// Mean over seeds with a two-sided 95% Student-t interval.

public struct MeanInterval: Sendable, Equatable, Codable {
    public let mean: Double
    /// Half-width of the 95% interval (0 when there is one value).
    public let halfWidth: Double
    public let count: Int

    public init(_ values: [Double]) {
        precondition(!values.isEmpty, "MeanInterval: no values")
        let n = values.count
        let m = values.reduce(0, +) / Double(n)
        count = n
        mean = m
        if n < 2 {
            halfWidth = 0
        } else {
            let v = values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(n - 1)
            halfWidth = MeanInterval.t975(degreesOfFreedom: n - 1) * (v / Double(n)).squareRoot()
        }
    }

    public var lower: Double { mean - halfWidth }
    public var upper: Double { mean + halfWidth }

    /// 0.975 quantile of Student's t (table for df ≤ 30, normal approximation with a 1/df correction above).
    public static func t975(degreesOfFreedom df: Int) -> Double {
        let table: [Double] = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                               2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                               2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
        precondition(df >= 1, "t975: df must be ≥ 1")
        if df <= table.count { return table[df - 1] }
        return 1.959964 + 2.37 / Double(df)
    }
}
