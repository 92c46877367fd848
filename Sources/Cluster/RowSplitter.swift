// How one MoE layer's routed rows are divided among live workers when experts have replicas.
//
// Work is measured in rows: every routed expert has the same shapes, so a worker's compute time is proportional
// to the rows it gets (the per-GEMM overhead of a split-off piece is small above `minimumPieceRows`). Measured
// per-worker speed is not used: on a shared machine it follows the other processes' load and would make the
// split chase noise; the hosts file is where uneven machines are expressed (give the faster one more experts).
//
// Algorithm, per round (a round is the first dispatch of a layer, or a retry of the pieces of failed workers):
//  1. Pieces whose expert has one live owner go to that owner.
//  2. Full replication (every other piece's expert is on every live worker): the contiguous cut. Level
//     T = ⌈rows / live workers⌉; pieces in ascending row order fill workers in index order up to T, a piece is cut
//     where a worker is full. Each worker's rows are then one contiguous block of the layer's buffers (no gather
//     or scatter copy), at most workers − 1 experts are split, and loads differ by less than `minimumPieceRows`.
//  3. Otherwise: longest pieces first, each whole to its least loaded live owner (LPT); then, while it helps,
//     the most loaded worker hands the tail of one of its pieces to the least loaded other live owner of that
//     piece's expert, half their difference in rows.
//  No cut leaves a piece under `minimumPieceRows` (a GEMM on a handful of rows costs nearly as much as one on
//  more), unless the expert has fewer rows than that in total.

/// Global rows `lo ..< lo + count` of a layer's `ExpertShards`, all routed to `expert`.
public struct RowPiece: Equatable, Sendable {
    public var expert: Int
    public var lo: Int
    public var count: Int
    public init(expert: Int, lo: Int, count: Int) { self.expert = expert; self.lo = lo; self.count = count }
}

/// Reusable state of the split (no allocation once its buffers have grown).
public struct RowSplitter {
    /// The smallest piece a cut may leave, in rows, by default.
    public static let minimumPieceRows = 16

    /// owners[e]: worker indices that load expert e.
    public let owners: [[Int]]
    public let workers: Int
    public let minimumPiece: Int
    /// Rows given to each worker in the last `split`.
    public private(set) var load: [Int]
    private var flexible: [RowPiece] = []

    public init(owners: [[Int]], workers: Int, minimumPiece: Int = RowSplitter.minimumPieceRows) {
        self.owners = owners; self.workers = workers; self.minimumPiece = max(1, minimumPiece)
        load = [Int](repeating: 0, count: workers)
    }

    /// Divides `pending` (pieces in ascending `lo`) among the workers with `alive[w]`, appending to
    /// `assigned[w]` (cleared first). Returns the experts of `pending` that have no live owner (then nothing is
    /// assigned).
    public mutating func split(_ pending: [RowPiece], alive: [Bool], into assigned: inout [[RowPiece]]) -> [Int] {
        precondition(alive.count == workers && assigned.count == workers, "split: one entry per worker")
        for w in 0..<workers { assigned[w].removeAll(keepingCapacity: true); load[w] = 0 }
        var ownerless: [Int] = []
        for p in pending where !owners[p.expert].contains(where: { alive[$0] }) {
            if ownerless.last != p.expert { ownerless.append(p.expert) }
        }
        guard ownerless.isEmpty else { return ownerless }
        var liveWorkers = 0
        for w in 0..<workers where alive[w] { liveWorkers += 1 }

        // 1. Experts with one live owner.
        flexible.removeAll(keepingCapacity: true)
        var everywhere = true
        var flexibleRows = 0
        for p in pending {
            var only = -1, live = 0
            for o in owners[p.expert] where alive[o] { only = o; live += 1 }
            if live == 1 {
                give(p, to: only, &assigned)
            } else {
                flexible.append(p)
                flexibleRows += p.count
                if live < liveWorkers { everywhere = false }
            }
        }
        if flexible.isEmpty { return ownerless }
        if everywhere && load.allSatisfy({ $0 == 0 }) {
            contiguousCut(flexibleRows: flexibleRows, liveWorkers: liveWorkers, alive: alive, &assigned)
        } else {
            packAndBalance(alive: alive, &assigned)
        }
        return ownerless
    }

    /// Step 2: live workers in index order filled up to ⌈rows / live workers⌉.
    private mutating func contiguousCut(flexibleRows: Int, liveWorkers: Int, alive: [Bool], _ assigned: inout [[RowPiece]]) {
        let level = (flexibleRows + liveWorkers - 1) / liveWorkers
        var w = alive.firstIndex(of: true)!
        for p in flexible {
            var rest = p
            while rest.count > 0 {
                var next = w + 1
                while next < workers && !alive[next] { next += 1 }
                let room = level - load[w]
                if next == workers || rest.count <= room {
                    give(rest, to: w, &assigned)
                    break
                }
                if room >= minimumPiece {
                    // Cut at the level, unless that leaves a sliver: then this worker takes the rest.
                    let take = rest.count - room < minimumPiece ? rest.count : room
                    give(RowPiece(expert: p.expert, lo: rest.lo, count: take), to: w, &assigned)
                    rest.lo += take; rest.count -= take
                }
                w = next
            }
        }
    }

    /// Step 3: LPT on whole pieces, then tail moves from the most loaded worker.
    private mutating func packAndBalance(alive: [Bool], _ assigned: inout [[RowPiece]]) {
        flexible.sort { $0.count != $1.count ? $0.count > $1.count : $0.lo < $1.lo }
        for p in flexible {
            var best = -1
            for o in owners[p.expert] where alive[o] && (best < 0 || load[o] < load[best]) { best = o }
            give(p, to: best, &assigned)
        }
        for _ in 0..<(4 * workers * max(1, owners.count)) {
            var m = -1
            for w in 0..<workers where alive[w] && (m < 0 || load[w] > load[m]) { m = w }
            // The piece of m whose expert has the least loaded other live owner.
            var bestPiece = -1, bestOwner = -1
            for (i, p) in assigned[m].enumerated() {
                for o in owners[p.expert] where o != m && alive[o] && (bestOwner < 0 || load[o] < load[bestOwner]) {
                    bestPiece = i; bestOwner = o
                }
            }
            guard bestOwner >= 0 else { return }
            let p = assigned[m][bestPiece]
            var amount = min(p.count, (load[m] - load[bestOwner]) / 2)
            if p.count - amount < minimumPiece { amount = p.count }   // leave no sliver behind
            guard amount > 0, amount >= minimumPiece || amount == p.count, load[bestOwner] + amount < load[m] else { return }
            assigned[m][bestPiece].count -= amount
            load[m] -= amount
            give(RowPiece(expert: p.expert, lo: p.lo + p.count - amount, count: amount), to: bestOwner, &assigned)
            if assigned[m][bestPiece].count == 0 { assigned[m].remove(at: bestPiece) }
        }
    }

    /// Appends `p` to worker `w`, merged into its last piece when that is the same expert and ends where `p` starts.
    private mutating func give(_ p: RowPiece, to w: Int, _ assigned: inout [[RowPiece]]) {
        load[w] += p.count
        if let last = assigned[w].last, last.expert == p.expert, last.lo + last.count == p.lo {
            assigned[w][assigned[w].count - 1].count += p.count
        } else {
            assigned[w].append(p)
        }
    }
}
