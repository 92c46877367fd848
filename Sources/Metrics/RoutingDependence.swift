import Foundation
import Tensor

/// How strongly expert choice depends on a factor (denoising step, token position or class), from a contingency
/// table of counts `[factor value][expert]` (one count per (token, top-k slot)).
///
/// - `mutualInformation`: I(E; F) = Σ p(f,e)·log₂(p(f,e)/(p(f)p(e))) in bits, the plug-in estimate.
/// - `normalized`: I / H(E), the share of the expert-choice entropy the factor explains (0…1).
/// - `nullMean`, `nullSD`: I under independence, from `permutations` tables with the same margins (the factor
///   labels of all counted slots shuffled); the plug-in MI is biased upward by about (F−1)(E−1)/(2N ln 2) bits,
///   which the permutation baseline carries too.
/// - `pValue`: (1 + #{null ≥ observed})/(1 + permutations), the permutation test of independence.
/// - `excess`: (I − nullMean)/H(E), the bias-corrected normalised effect the verdicts use.
public struct RoutingDependence: Codable, Equatable, Sendable {
    public var factor: String
    public var layer: Int?
    public var mutualInformationBits: Double
    public var expertEntropyBits: Double
    public var normalized: Double
    public var nullMean: Double
    public var nullSD: Double
    public var pValue: Double
    public var permutations: Int
    public var excess: Double

    /// `table` is row-major `[rows][experts]`.
    public init(factor: String, layer: Int?, table: [Double], rows: Int, experts: Int, permutations: Int = 200, seed: UInt64 = 0) {
        precondition(table.count == rows * experts && rows > 0 && experts > 0, "RoutingDependence: table shape")
        self.factor = factor; self.layer = layer; self.permutations = permutations
        let counts = table.map { Int($0.rounded()) }
        mutualInformationBits = RoutingDependence.mutualInformation(counts, rows: rows, experts: experts)
        var colSum = [Double](repeating: 0, count: experts)
        for r in 0..<rows { for e in 0..<experts { colSum[e] += Double(counts[r * experts + e]) } }
        let n = colSum.reduce(0, +)
        expertEntropyBits = n > 0 ? -colSum.filter { $0 > 0 }.map { $0 / n * log2($0 / n) }.reduce(0, +) : 0
        normalized = expertEntropyBits > 0 ? mutualInformationBits / expertEntropyBits : 0

        // Permutation null: the slots' factor labels shuffled against their expert labels (margins kept).
        var rowLabels: [Int32] = [], expertLabels: [Int32] = []
        for r in 0..<rows {
            for e in 0..<experts {
                let c = counts[r * experts + e]
                rowLabels.append(contentsOf: repeatElement(Int32(r), count: c))
                expertLabels.append(contentsOf: repeatElement(Int32(e), count: c))
            }
        }
        var rng = SplitMix64(seed: seed ^ 0x6D75_7475_616C)  // "mutual"
        var nulls: [Double] = []
        var shuffled = [Int](repeating: 0, count: rows * experts)
        var exceed = 0
        for _ in 0..<permutations {
            for i in stride(from: rowLabels.count - 1, to: 0, by: -1) {
                rowLabels.swapAt(i, Int(rng.next() % UInt64(i + 1)))
            }
            for i in shuffled.indices { shuffled[i] = 0 }
            for i in rowLabels.indices { shuffled[Int(rowLabels[i]) * experts + Int(expertLabels[i])] += 1 }
            let mi = RoutingDependence.mutualInformation(shuffled, rows: rows, experts: experts)
            nulls.append(mi)
            if mi >= mutualInformationBits { exceed += 1 }
        }
        let mean = nulls.isEmpty ? 0 : nulls.reduce(0, +) / Double(nulls.count)
        nullMean = mean
        nullSD = nulls.count > 1 ? (nulls.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(nulls.count - 1)).squareRoot() : 0
        pValue = Double(1 + exceed) / Double(1 + permutations)
        excess = expertEntropyBits > 0 ? (mutualInformationBits - nullMean) / expertEntropyBits : 0
    }

    /// Plug-in mutual information of a `[rows][experts]` count table, in bits.
    public static func mutualInformation(_ counts: [Int], rows: Int, experts: Int) -> Double {
        var rowSum = [Double](repeating: 0, count: rows), colSum = [Double](repeating: 0, count: experts)
        var n = 0.0
        for r in 0..<rows {
            for e in 0..<experts {
                let c = Double(counts[r * experts + e])
                rowSum[r] += c; colSum[e] += c; n += c
            }
        }
        guard n > 0 else { return 0 }
        var mi = 0.0
        for r in 0..<rows where rowSum[r] > 0 {
            for e in 0..<experts {
                let c = Double(counts[r * experts + e])
                if c > 0 { mi += c / n * log2(c * n / (rowSum[r] * colSum[e])) }
            }
        }
        return max(mi, 0)
    }
}
