// Which worker hosts which experts (the `hosts` file's expert ranges), and the load each worker and NUMA node
// carries under it. An expert listed on r workers (replicas) has its load split evenly, load/r each: the
// coordinator cuts an expert's rows between its replicas per layer (Cluster's RowSplitter; exactly even under full
// replication, balancing the workers rather than each expert otherwise).
import Foundation

public enum PlacementError: Error, Equatable, CustomStringConvertible {
    case noWorkers
    case expertOutOfRange(worker: String, expert: Int, experts: Int)
    case duplicateExpert(worker: String, expert: Int)
    case unhostedExperts([Int])

    public var description: String {
        switch self {
        case .noWorkers: return "placement has no workers"
        case let .expertOutOfRange(w, e, n): return "worker \(w): expert \(e) is outside 0..<\(n)"
        case let .duplicateExpert(w, e): return "worker \(w): expert \(e) listed twice on the same worker"
        case let .unhostedExperts(es): return "experts hosted by no worker: \(es.map(String.init).joined(separator: ", "))"
        }
    }
}

public struct ExpertPlacement: Codable, Equatable, Sendable {
    public struct Worker: Codable, Equatable, Sendable {
        public var name: String
        public var numaNode: Int
        /// Expert ids hosted by this worker (for every MoE layer), ascending.
        public var experts: [Int]

        public init(name: String, numaNode: Int, experts: [Int]) {
            self.name = name
            self.numaNode = numaNode
            self.experts = experts.sorted()
        }

        /// From inclusive ranges, as written in a hosts file (`0-3,6`).
        public init(name: String, numaNode: Int, expertRanges: [ClosedRange<Int>]) {
            self.init(name: name, numaNode: numaNode, experts: expertRanges.flatMap { Array($0) })
        }
    }

    /// Number of routed experts per layer.
    public var experts: Int
    public var workers: [Worker]

    /// Validates: at least one worker, ids in 0..<experts, no expert twice on one worker, every expert hosted.
    public init(experts: Int, workers: [Worker]) throws {
        guard !workers.isEmpty else { throw PlacementError.noWorkers }
        var hosted = [Bool](repeating: false, count: experts)
        for w in workers {
            var seen = Set<Int>()
            for e in w.experts {
                guard e >= 0, e < experts else { throw PlacementError.expertOutOfRange(worker: w.name, expert: e, experts: experts) }
                guard seen.insert(e).inserted else { throw PlacementError.duplicateExpert(worker: w.name, expert: e) }
                hosted[e] = true
            }
        }
        let missing = (0..<experts).filter { !hosted[$0] }
        guard missing.isEmpty else { throw PlacementError.unhostedExperts(missing) }
        self.experts = experts
        self.workers = workers
    }

    /// Contiguous blocks of experts over `workers` workers (the first `experts % workers` get one more), worker i
    /// on NUMA node i % numaNodes.
    public static func contiguous(experts: Int, workers: Int, numaNodes: Int = 1) -> ExpertPlacement {
        precondition(workers > 0 && experts >= workers && numaNodes > 0, "contiguous: need 0 < workers ≤ experts")
        var list: [Worker] = []
        var next = 0
        for i in 0..<workers {
            let n = experts / workers + (i < experts % workers ? 1 : 0)
            list.append(Worker(name: "w\(i)", numaNode: i % numaNodes, experts: Array(next..<(next + n))))
            next += n
        }
        return try! ExpertPlacement(experts: experts, workers: list)
    }

    /// How many workers host each expert.
    public var replicaCounts: [Int] {
        var r = [Int](repeating: 0, count: experts)
        for w in workers { for e in w.experts { r[e] += 1 } }
        return r
    }

    /// Distinct NUMA node ids, ascending.
    public var numaNodeIDs: [Int] { Array(Set(workers.map(\.numaNode))).sorted() }

    /// Load of each worker: Σ over its experts of load_e / replicas_e.
    public func workerLoads(expertLoads: [Double]) -> [Double] {
        precondition(expertLoads.count == experts, "workerLoads: \(expertLoads.count) loads for \(experts) experts")
        let r = replicaCounts
        return workers.map { w in w.experts.reduce(0) { $0 + expertLoads[$1] / Double(r[$1]) } }
    }

    /// Load of each NUMA node (sum of its workers), in `numaNodeIDs` order.
    public func numaLoads(expertLoads: [Double]) -> [Double] {
        let w = workerLoads(expertLoads: expertLoads)
        return numaNodeIDs.map { node in
            zip(workers, w).reduce(0) { $0 + ($1.0.numaNode == node ? $1.1 : 0) }
        }
    }
}
