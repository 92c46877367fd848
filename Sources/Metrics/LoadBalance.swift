// Load-balance statistics of MoE routing over experts, workers or NUMA nodes.
//
// Definitions, for loads x_1..x_n ≥ 0 over n units (experts, workers or NUMA nodes), total S = Σx, mean m = S/n:
//   balancedness        m / max x                 (1 = perfect; vLLM EPLB's per-layer balancedness)
//   maxVio              (max x − m) / m           (Loss-Free Balancing, Wang et al. 2024)
//   minOverMean         min x / m
//   cv                  σ / m, σ the POPULATION standard deviation (divide by n)
//   entropyNats         H = −Σ p_i ln p_i with p_i = x_i / S (0·ln 0 = 0), in nats
//   entropyBits         H / ln 2
//   normalizedEntropy   H / ln n ∈ [0, 1] (1 = uniform routing; defined as 1 when n = 1)
//   effectiveFraction   exp(H) / n ("diversity": the fraction of units effectively in use)
//   deadFraction        fraction of units with zero load
// All-zero loads (S = 0) are reported as perfectly balanced: balancedness 1, maxVio 0, cv 0, entropy 0,
// normalizedEntropy 0, effectiveFraction 0, deadFraction 1.
//
// Overall figures across layers: layers run one after another and each waits for its most loaded unit, so the
// overall balancedness is Σ_l mean_l / Σ_l max_l (vLLM's "summed over layers"), not the mean of the ratios.
import Foundation

public struct LoadStats: Codable, Equatable, Sendable {
    public var units: Int
    public var total: Double
    public var mean: Double
    public var max: Double
    public var min: Double
    public var balancedness: Double
    public var maxVio: Double
    public var minOverMean: Double
    public var cv: Double
    public var entropyNats: Double
    public var entropyBits: Double
    public var normalizedEntropy: Double
    public var effectiveFraction: Double
    public var deadFraction: Double

    public init(loads: [Double]) {
        precondition(!loads.isEmpty, "LoadStats: no units")
        precondition(loads.allSatisfy { $0 >= 0 && $0.isFinite }, "LoadStats: loads must be finite and ≥ 0")
        let n = Double(loads.count)
        units = loads.count
        total = loads.reduce(0, +)
        mean = total / n
        max = loads.max()!
        min = loads.min()!
        deadFraction = Double(loads.filter { $0 == 0 }.count) / n
        guard total > 0 else {
            balancedness = 1; maxVio = 0; minOverMean = 1; cv = 0
            entropyNats = 0; entropyBits = 0; normalizedEntropy = 0; effectiveFraction = 0
            return
        }
        balancedness = mean / max
        maxVio = (max - mean) / mean
        minOverMean = min / mean
        let m = mean
        let variance = loads.reduce(0) { $0 + ($1 - m) * ($1 - m) } / n
        cv = variance.squareRoot() / mean
        var h = 0.0
        for x in loads where x > 0 {
            let p = x / total
            h -= p * Foundation.log(p)
        }
        entropyNats = h
        entropyBits = h / Foundation.log(2.0)
        normalizedEntropy = loads.count > 1 ? h / Foundation.log(n) : 1
        effectiveFraction = Foundation.exp(h) / n
    }
}

/// Balance of one layer (or of the loads summed over layers when `layer` is nil).
public struct LayerBalance: Codable, Equatable, Sendable {
    public var layer: Int?
    /// Per-expert selection counts.
    public var expertLoads: [Double]
    public var experts: LoadStats
    /// Per-worker load (expert load split evenly over its replicas), in placement worker order; nil without a placement.
    public var workerLoads: [Double]?
    public var workers: LoadStats?
    /// Per-NUMA-node load, in `numaNodeIDs` order; nil without a placement.
    public var numaNodeIDs: [Int]?
    public var numaLoads: [Double]?
    public var numaNodes: LoadStats?

    public init(layer: Int?, expertLoads: [Double], placement: ExpertPlacement?) {
        self.layer = layer
        self.expertLoads = expertLoads
        experts = LoadStats(loads: expertLoads)
        if let placement {
            let w = placement.workerLoads(expertLoads: expertLoads)
            workerLoads = w
            workers = LoadStats(loads: w)
            let nodes = placement.numaNodeIDs
            numaNodeIDs = nodes
            let n = placement.numaLoads(expertLoads: expertLoads)
            numaLoads = n
            numaNodes = LoadStats(loads: n)
        }
    }
}

/// Summary across layers (see the file comment for why balancedness is a ratio of sums).
public struct OverallBalance: Codable, Equatable, Sendable {
    /// Σ_l mean_l / Σ_l max_l over per-expert loads.
    public var expertBalancedness: Double
    /// Same over per-worker loads; nil without a placement.
    public var workerBalancedness: Double?
    /// Same over per-NUMA-node loads; nil without a placement.
    public var numaBalancedness: Double?
    public var meanMaxVio: Double
    public var worstMaxVio: Double
    /// Layer with the largest MaxVio.
    public var worstLayer: Int
    public var meanCV: Double
    public var meanNormalizedEntropy: Double
}

/// Per-layer and overall balance of a routing run.
public struct LoadBalanceReport: Codable, Equatable, Sendable {
    public var layers: [LayerBalance]
    /// Loads summed over all layers.
    public var summed: LayerBalance
    public var overall: OverallBalance
    public var placement: ExpertPlacement?

    /// `loads[layer][expert]`: selection counts (e.g. `ExpertLoadRecorder.expertLoadMatrix()`).
    public init(loads: [[Double]], placement: ExpertPlacement? = nil) {
        precondition(!loads.isEmpty, "LoadBalanceReport: no layers")
        let e = loads[0].count
        precondition(loads.allSatisfy { $0.count == e }, "LoadBalanceReport: ragged load matrix")
        if let placement { precondition(placement.experts == e, "LoadBalanceReport: placement has \(placement.experts) experts, loads have \(e)") }
        self.placement = placement
        layers = loads.enumerated().map { LayerBalance(layer: $0.offset, expertLoads: $0.element, placement: placement) }
        var sum = [Double](repeating: 0, count: e)
        for row in loads { for x in 0..<e { sum[x] += row[x] } }
        summed = LayerBalance(layer: nil, expertLoads: sum, placement: placement)

        func ratioOfSums(_ stats: [LoadStats]) -> Double {
            let maxSum = stats.reduce(0) { $0 + $1.max }
            return maxSum > 0 ? stats.reduce(0) { $0 + $1.mean } / maxSum : 1
        }
        let expertStats = layers.map(\.experts)
        let n = Double(layers.count)
        var worst = 0
        for (i, s) in expertStats.enumerated() where s.maxVio > expertStats[worst].maxVio { worst = i }
        overall = OverallBalance(
            expertBalancedness: ratioOfSums(expertStats),
            workerBalancedness: placement == nil ? nil : ratioOfSums(layers.compactMap(\.workers)),
            numaBalancedness: placement == nil ? nil : ratioOfSums(layers.compactMap(\.numaNodes)),
            meanMaxVio: expertStats.reduce(0) { $0 + $1.maxVio } / n,
            worstMaxVio: expertStats[worst].maxVio,
            worstLayer: worst,
            meanCV: expertStats.reduce(0) { $0 + $1.cv } / n,
            meanNormalizedEntropy: expertStats.reduce(0) { $0 + $1.normalizedEntropy } / n)
    }
}
