// Placement what-if: how much would re-placing (and replicating) experts lower the most loaded worker?
//
// Inputs: measured loads[layer][expert], the current placement, and a budget of extra expert slots per worker.
// One placement serves every layer (a worker holds expert e of all layers), as in the hosts file.
//
// Algorithm (documented in profiles/README.md as well):
//  1. Slots. Worker w may hold cap_w = |experts on w now| + extraSlotsPerWorker experts; S = Σ cap_w.
//  2. Replicas (DeepSeek-EPLB style greedy). Start with r_e = 1 for every expert; L_e = Σ_layers load_{l,e}.
//     While a free slot remains (Σ r_e < S): take the expert with the largest shard L_e / r_e among those with
//     r_e < W (no worker holds two copies); stop if that shard is ≤ Σ_e L_e / W (a shard no heavier than the ideal
//     per-worker load cannot be what keeps the maximum up, so more copies only cost memory); else r_e += 1.
//  3. Packing (LPT, longest processing time first). Sort shards (e, L_e / r_e) by load descending (ties: lower
//     expert id first); give each to the least loaded worker that has a free slot and does not hold e yet (ties:
//     lower worker index). If no such worker exists, fall back to the least loaded worker with a free slot.
//     LPT is within 4/3 of the optimal makespan without slot limits (Graham 1969).
//  4. Cost of a placement: `maxWorkerLoad` on the layer-summed loads, and `criticalPathLoad` = Σ_l max_w load_{l,w},
//     the sum over layers of each layer's most loaded worker (layers run in sequence and each waits for its slowest
//     worker). `lowerBound` = max(Σ L / W, max_e L_e / r_e) for the summed loads with the chosen replicas.
import Foundation

public struct PlacementCost: Codable, Equatable, Sendable {
    /// Per-worker load of the layer-summed expert loads, in placement worker order.
    public var workerLoads: [Double]
    public var maxWorkerLoad: Double
    public var meanWorkerLoad: Double
    /// meanWorkerLoad / maxWorkerLoad.
    public var balancedness: Double
    /// Σ over layers of the per-layer maximum worker load.
    public var criticalPathLoad: Double

    public init(placement: ExpertPlacement, loads: [[Double]]) {
        var summed = [Double](repeating: 0, count: placement.experts)
        for row in loads { for e in 0..<placement.experts { summed[e] += row[e] } }
        workerLoads = placement.workerLoads(expertLoads: summed)
        maxWorkerLoad = workerLoads.max() ?? 0
        meanWorkerLoad = workerLoads.reduce(0, +) / Double(max(workerLoads.count, 1))
        balancedness = maxWorkerLoad > 0 ? meanWorkerLoad / maxWorkerLoad : 1
        criticalPathLoad = loads.reduce(0) { $0 + (placement.workerLoads(expertLoads: $1).max() ?? 0) }
    }
}

public struct PlacementWhatIf: Codable, Equatable, Sendable {
    public var extraSlotsPerWorker: Int
    public var current: PlacementCost
    public var rebalanced: PlacementCost
    public var rebalancedPlacement: ExpertPlacement
    /// Replicas per expert in the rebalanced placement.
    public var replicas: [Int]
    /// max(Σ L / W, max_e L_e / r_e) on the layer-summed loads: no placement with these replicas beats it.
    public var lowerBound: Double
    /// current.maxWorkerLoad / rebalanced.maxWorkerLoad (> 1 means the rebalanced placement is better).
    public var improvement: Double
}

public enum PlacementPlanner {
    /// See the file comment for the algorithm. `loads[layer][expert]` must have `current.experts` columns.
    public static func whatIf(loads: [[Double]], current: ExpertPlacement, extraSlotsPerWorker: Int) -> PlacementWhatIf {
        precondition(extraSlotsPerWorker >= 0, "whatIf: negative slot budget")
        let e = current.experts, w = current.workers.count
        precondition(loads.allSatisfy { $0.count == e }, "whatIf: loads must have one column per expert")
        var summed = [Double](repeating: 0, count: e)
        for row in loads { for x in 0..<e { summed[x] += row[x] } }
        let total = summed.reduce(0, +)
        let capacity = current.workers.map { $0.experts.count + extraSlotsPerWorker }
        let slots = capacity.reduce(0, +)

        // 2. replicas
        var replicas = [Int](repeating: 1, count: e)
        var used = e
        while used < slots {
            var best = -1
            for x in 0..<e where replicas[x] < w {
                if best < 0 || summed[x] / Double(replicas[x]) > summed[best] / Double(replicas[best]) { best = x }
            }
            guard best >= 0, summed[best] / Double(replicas[best]) > total / Double(w) else { break }
            replicas[best] += 1
            used += 1
        }

        // 3. LPT packing
        var shards: [(expert: Int, load: Double)] = []
        for x in 0..<e { for _ in 0..<replicas[x] { shards.append((x, summed[x] / Double(replicas[x]))) } }
        shards.sort { $0.load != $1.load ? $0.load > $1.load : $0.expert < $1.expert }
        var hosted = [[Int]](repeating: [], count: w)
        var workerLoad = [Double](repeating: 0, count: w)
        for shard in shards {
            func pick(allowDuplicate: Bool) -> Int? {
                var best: Int?
                for i in 0..<w where hosted[i].count < capacity[i] && (allowDuplicate || !hosted[i].contains(shard.expert)) {
                    if best == nil || workerLoad[i] < workerLoad[best!] { best = i }
                }
                return best
            }
            // Σ capacity ≥ number of shards, so a worker with a free slot always exists.
            let i = pick(allowDuplicate: false) ?? pick(allowDuplicate: true)!
            hosted[i].append(shard.expert)
            workerLoad[i] += shard.load
        }
        // A fallback duplicate on one worker is recorded once with its summed share; rebuild replicas accordingly.
        let workers = current.workers.enumerated().map { i, old in
            ExpertPlacement.Worker(name: old.name, numaNode: old.numaNode, experts: Array(Set(hosted[i])))
        }
        let planned = try! ExpertPlacement(experts: e, workers: workers)
        let rebalanced = PlacementCost(placement: planned, loads: loads)
        let currentCost = PlacementCost(placement: current, loads: loads)
        let finalReplicas = planned.replicaCounts
        let hottestShard = (0..<e).map { summed[$0] / Double(finalReplicas[$0]) }.max() ?? 0
        return PlacementWhatIf(
            extraSlotsPerWorker: extraSlotsPerWorker,
            current: currentCost,
            rebalanced: rebalanced,
            rebalancedPlacement: planned,
            replicas: finalReplicas,
            lowerBound: max(total / Double(w), hottestShard),
            improvement: rebalanced.maxWorkerLoad > 0 ? currentCost.maxWorkerLoad / rebalanced.maxWorkerLoad : 1)
    }
}
