import DiT
import Foundation
import Tensor
import Wire
import XCTest
@testable import Cluster

/// Replicas: how a layer's rows are split between workers that share experts, that the split output equals the
/// in-process engine's, and fail-over to a live replica when a worker is dead or hung.
final class ReplicaTests: XCTestCase {
    override func setUp() { Parallel.threads = 2; BLASThreads.set(1) }

    /// Checks the split of `counts` rows per expert: every row once, each piece on a live owner, no cut below
    /// the minimum piece. Returns the pieces per worker.
    func checkedSplit(counts: [Int], owners: [[Int]], alive: [Bool], file: StaticString = #filePath,
                      line: UInt = #line) -> [[RowPiece]] {
        var splitter = RowSplitter(owners: owners, workers: alive.count)
        var pending: [RowPiece] = [], lo = 0
        for (e, n) in counts.enumerated() { if n > 0 { pending.append(RowPiece(expert: e, lo: lo, count: n)) }; lo += n }
        var assigned = [[RowPiece]](repeating: [], count: alive.count)
        XCTAssertEqual(splitter.split(pending, alive: alive, into: &assigned), [], file: file, line: line)
        var covered = [Int](repeating: 0, count: lo)
        var rowsOf = [Int](repeating: 0, count: counts.count)
        for (w, pieces) in assigned.enumerated() {
            XCTAssertTrue(pieces.isEmpty || alive[w], "dead worker \(w) got work", file: file, line: line)
            XCTAssertEqual(pieces.reduce(0) { $0 + $1.count }, splitter.load[w], file: file, line: line)
            for p in pieces {
                XCTAssertTrue(owners[p.expert].contains(w), "worker \(w) does not own expert \(p.expert)", file: file, line: line)
                if p.count < counts[p.expert] {
                    XCTAssertGreaterThanOrEqual(p.count, RowSplitter.minimumPieceRows, "tiny cut \(p)", file: file, line: line)
                }
                for r in p.lo..<(p.lo + p.count) { covered[r] += 1 }
                rowsOf[p.expert] += p.count
            }
        }
        XCTAssertEqual(covered, [Int](repeating: 1, count: lo), "every row exactly once", file: file, line: line)
        XCTAssertEqual(rowsOf, counts, file: file, line: line)
        return assigned
    }

    func testFullReplicationIsAContiguousEvenCut() {
        let counts = [700, 20, 0, 300, 1000, 90, 310, 1676]   // 4096 rows, skewed
        let owners = [[Int]](repeating: [0, 1], count: 8)
        let a = checkedSplit(counts: counts, owners: owners, alive: [true, true])
        let loads = a.map { $0.reduce(0) { $0 + $1.count } }
        XCTAssertEqual(loads, [2048, 2048])
        for pieces in a {   // one block of consecutive rows per worker
            for (x, y) in zip(pieces, pieces.dropFirst()) { XCTAssertEqual(x.lo + x.count, y.lo) }
        }
        // Exactly one expert is cut.
        XCTAssertEqual(Set(a[0].map(\.expert)).intersection(a[1].map(\.expert)).count, 1)
        // Three workers: within a minimum piece of a third each.
        let three = checkedSplit(counts: counts, owners: [[Int]](repeating: [0, 1, 2], count: 8), alive: [true, true, true])
        for pieces in three {
            XCTAssertLessThanOrEqual(abs(pieces.reduce(0) { $0 + $1.count } - 4096 / 3), RowSplitter.minimumPieceRows)
        }
    }

    func testPartialReplicasBalanceAroundFixedExperts() {
        // w0 hosts all, w1 hosts 4-7, w2 hosts 0-3 (the layout of the kill test); expert 7 is hot.
        let owners: [[Int]] = (0..<8).map { $0 < 4 ? [0, 2] : [0, 1] }
        let counts = [100, 100, 100, 100, 100, 100, 100, 2000]
        let a = checkedSplit(counts: counts, owners: owners, alive: [true, true, true])
        let loads = a.map { $0.reduce(0) { $0 + $1.count } }
        // The hot expert is cut between w0 and w1; w2 can only take experts 0-3 (400 rows).
        XCTAssertEqual(loads[2], 400)
        XCTAssertLessThanOrEqual(abs(loads[0] - loads[1]), RowSplitter.minimumPieceRows, "\(loads)")
        // A dead worker's share goes to the others; an expert without a live owner is reported.
        let b = checkedSplit(counts: counts, owners: owners, alive: [true, false, true])
        XCTAssertEqual(b[1], [])
        var splitter = RowSplitter(owners: [[0], [1]], workers: 2)
        var assigned: [[RowPiece]] = [[], []]
        XCTAssertEqual(splitter.split([RowPiece(expert: 0, lo: 0, count: 5), RowPiece(expert: 1, lo: 5, count: 5)],
                                      alive: [true, false], into: &assigned), [1])
    }

    func testRandomSplitsCoverEveryRowOnce() {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<300 {
            let workers = 1 + rng.below(4), experts = 1 + rng.below(9)
            var owners: [[Int]] = []
            for _ in 0..<experts {
                var o = (0..<workers).filter { _ in rng.below(2) == 0 }
                if o.isEmpty { o = [rng.below(workers)] }
                owners.append(o)
            }
            var alive = (0..<workers).map { _ in rng.below(4) != 0 }
            for o in owners where !o.contains(where: { alive[$0] }) { alive[o[0]] = true }
            let counts = (0..<experts).map { _ in rng.below(3) == 0 ? rng.below(20) : rng.below(900) }
            _ = checkedSplit(counts: counts, owners: owners, alive: alive)
        }
    }

    /// Both workers host every expert: rows of some experts are split between them, both compute, and the output
    /// equals the in-process engine's; the same for a partial-replica layout.
    func testSplitExpertsEqualLocal() throws {
        let input = TinyInput(batch: 3)
        let want = try input.run(try DiTModel(config: tinyConfig, source: tinySource))
        for layout in [[("w0", Array(0..<8)), ("w1", Array(0..<8))],
                       [("w0", Array(0..<8)), ("w1", [4, 5, 6, 7]), ("w2", [0, 1, 2, 3])]] {
            let cluster = try TestCluster(layout)
            let remote = try DiTModel(config: tinyConfig, source: tinySource)
            let exec = try ClusterExpertExecutor(hosts: cluster.hosts, expertCount: 8, options: ClusterOptions(
                secret: testSecret, fingerprint: ModelFingerprint(serving: remote.weights), codec: .raw, minimumSplitRows: 1))
            remote.executor = exec
            let (ok, worst) = maxRelativeViolation(want, try input.run(remote))
            XCTAssertTrue(ok, "split cluster differs from local by \(worst) relative (\(layout.map(\.0)))")
            XCTAssertGreaterThan(exec.timing.splitExperts, 0, "no expert was split")
            let served = cluster.workers.map { $0.statsReply().experts.reduce(0) { $0 + $1.rows } }
            XCTAssertEqual(served.reduce(0, +), UInt64(tinyConfig.depth * 3 * tinyConfig.tokens * tinyConfig.numExpertsPerTok))
            if layout.count == 2 { XCTAssertEqual(served[0], served[1], "an even split: \(served)") }
            exec.close()
        }
    }

    /// Workers compute in the coordinator's precision: a BF16 cluster equals the BF16 in-process engine, and a
    /// worker loaded in another precision fails the handshake.
    func testBF16WorkersEqualBF16Local() throws {
        guard DNNL.isAvailable else { throw XCTSkip("BF16 GEMMs need oneDNN") }
        let saved = GEMMBackend.current
        GEMMBackend.current = .onednn
        defer { GEMMBackend.current = saved }
        let input = TinyInput(batch: 2)
        let local = try DiTModel(weights: DiTWeights(config: tinyConfig, source: tinySource, precision: .bf16))
        let want = try input.run(local)
        var workers: [ExpertWorker] = []
        var entries: [HostEntry] = []
        for (i, p) in [ComputePrecision.bf16, .bf16, .fp32].enumerated() {
            let w = try ExpertWorker.start(config: tinyConfig, source: tinySource, experts: Array(0..<8),
                                           options: WorkerOptions(name: "w\(i)", port: 0, secret: testSecret), precision: p)
            w.serveInBackground()
            workers.append(w)
            entries.append(HostEntry(name: "w\(i)", address: "127.0.0.1", port: w.port, numaNode: 0, experts: Array(0..<8), line: i + 1))
        }
        defer { workers.forEach { $0.stop() } }
        let remote = try DiTModel(weights: DiTWeights(config: tinyConfig, source: tinySource, precision: .bf16))
        let options = ClusterOptions(secret: testSecret, fingerprint: ModelFingerprint(serving: remote.weights), codec: .raw)
        let exec = try ClusterExpertExecutor(hosts: HostsFile(path: "h", entries: Array(entries[0..<2])), expertCount: 8, options: options)
        remote.executor = exec
        let (ok, worst) = maxRelativeViolation(want, try input.run(remote))
        XCTAssertTrue(ok, "BF16 cluster differs from BF16 local by \(worst) relative")
        // Raw BF16 shards go to the workers' BF16 GEMMs as they are; shuffled and/or LZ4 ones are decoded to BF16
        // bits (no widening): the same values, so the same output, bit for bit.
        var outputs: [[Float]] = []
        for codec in BF16CodecTests.bf16Codecs {
            var o = options
            o.codec = codec
            let e = try ClusterExpertExecutor(hosts: HostsFile(path: "h", entries: Array(entries[0..<2])), expertCount: 8, options: o)
            remote.executor = e
            outputs.append(try input.run(remote))
            e.close()
        }
        for (i, o) in outputs.enumerated().dropFirst() {
            XCTAssertEqual(outputs[0].map(\.bitPattern), o.map(\.bitPattern), "\(BF16CodecTests.bf16Codecs[i]) against raw BF16")
        }
        // The results come back as BF16 (a lossy codec): close to the BF16 engine in norm.
        var num: Double = 0, den: Double = 0
        for (a, b) in zip(want, outputs[0]) { num += Double((a - b) * (a - b)); den += Double(a * a) }
        XCTAssertLessThan((num / den).squareRoot(), 1e-2)
        // The FP32 worker is refused by name.
        XCTAssertThrowsError(try ClusterExpertExecutor(hosts: HostsFile(path: "h", entries: [entries[2]]), expertCount: 8,
                                                       options: options)) { e in
            XCTAssertTrue("\(e)".contains("w2") && "\(e)".contains("fingerprint"), "\(e)")
        }
    }
}

/// Fail-over for new forwards: a dead replica at start and a hung replica mid-forward.
extension ReplicaTests {
    /// One of two full replicas is down when the executor is made: forwards run on the live one, exactly, and the
    /// dead one is reported. Without a replica the same outage refuses to start, naming the worker.
    func testDeadReplicaDoesNotRefuseNewForwards() throws {
        let input = TinyInput(batch: 2)
        let want = try input.run(try DiTModel(config: tinyConfig, source: tinySource))
        let cluster = try TestCluster([("w0", Array(0..<8)), ("w1", Array(0..<8))])
        cluster.workers[1].stop()
        XCTAssertTrue(cluster.workers[1].waitForConnections())
        let remote = try DiTModel(config: tinyConfig, source: tinySource)
        let exec = try cluster.executor(weights: remote.weights)
        remote.executor = exec
        XCTAssertEqual(exec.workers.map(\.alive), [true, false])
        XCTAssertEqual(exec.deadWorkers.map(\.name), ["w1"])
        XCTAssertTrue(exec.deadWorkers[0].reason.contains("w1"), exec.deadWorkers[0].reason)
        for _ in 0..<2 { XCTAssertTrue(maxRelativeViolation(want, try input.run(remote)).ok) }
        XCTAssertEqual(exec.timing.retries, 0, "no request went to the dead worker")

        let halves = try TestCluster([("w0", [0, 1, 2, 3]), ("w1", [4, 5, 6, 7])])
        halves.workers[1].stop()
        XCTAssertTrue(halves.workers[1].waitForConnections())
        XCTAssertThrowsError(try halves.executor(weights: remote.weights)) { e in
            guard case let .connectFailed(worker, _, _)? = e as? ClusterError else { return XCTFail("\(e)") }
            XCTAssertEqual(worker, "w1")
        }
    }

    /// A replica that takes requests and never answers (as a SIGSTOPped or wedged process would) is abandoned
    /// after the short fail-over deadline, not the 30 s request deadline; the fail-over is reported, the output is
    /// exact, and later forwards do not wait for it (its reconnect runs beside them).
    func testHungReplicaIsAbandonedAfterTheFailoverDeadline() throws {
        let input = TinyInput(batch: 2)
        let want = try input.run(try DiTModel(config: tinyConfig, source: tinySource))
        let cluster = try TestCluster([("w0", Array(0..<8))])
        let remote = try DiTModel(config: tinyConfig, source: tinySource)
        let fp = ModelFingerprint(serving: remote.weights)
        let hung = try HungWorker(fingerprint: fp)
        defer { hung.stop() }
        var hosts = cluster.hosts
        hosts.entries.append(HostEntry(name: "sleepy", address: "127.0.0.1", port: hung.port, numaNode: 0,
                                       experts: Array(0..<8), line: 2))
        let exec = try ClusterExpertExecutor(hosts: hosts, expertCount: 8,
                                             options: ClusterOptions(secret: testSecret, fingerprint: fp, connectTimeout: 2,
                                                                     requestTimeout: 30, failoverTimeout: 0.3,
                                                                     reconnectBackoff: 0.05))
        remote.executor = exec
        var t0 = Date()
        XCTAssertTrue(maxRelativeViolation(want, try input.run(remote)).ok)
        let first = Date().timeIntervalSince(t0)
        XCTAssertLessThan(first, 3, "a hung replica held the forward for \(first) s")
        XCTAssertEqual(exec.timing.failovers.count, 1, "\(exec.timing.failovers)")
        let f = try XCTUnwrap(exec.timing.failovers.first)
        XCTAssertEqual(f.worker, "sleepy")
        XCTAssertEqual(f.layer, 0)
        XCTAssertGreaterThan(f.rows, 0)
        XCTAssertGreaterThanOrEqual(f.after, 0.29)
        XCTAssertLessThan(f.after, 1.5)
        XCTAssertTrue(f.reason.contains("timeout"), f.reason)
        XCTAssertEqual(exec.deadWorkers.map(\.name), ["sleepy"])
        // Later forwards start on the live replica; the reconnect to the hung one (which never completes its
        // handshake) runs on its own thread and costs them nothing.
        Thread.sleep(forTimeInterval: 0.1)
        t0 = Date()
        for _ in 0..<3 { XCTAssertTrue(maxRelativeViolation(want, try input.run(remote)).ok) }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 1.5)
        XCTAssertEqual(exec.timing.failovers.count, 1)
        XCTAssertEqual(exec.timing.reconnects, 0)
        exec.close()
    }
}

/// A listener that completes handshakes as a worker hosting all 8 experts, takes requests and never answers.
final class HungWorker: @unchecked Sendable {
    let listener: WireListener
    var port: Int { listener.port }
    private let lock = NSLock()
    private var stopped = false
    private var held: [WireConnection] = []

    init(fingerprint fp: ModelFingerprint) throws {
        listener = try WireListener(host: "127.0.0.1", port: 0)
        Thread.detachNewThread { [self] in
            // Serves one connection: the handshake, then silence. Later connections wait in the backlog unanswered.
            guard let c = try? listener.accept(timeout: 10) else { return }
            _ = try? Handshake.server(c, secret: testSecret, fingerprint: fp) { _ in
                Welcome(nonce: [], fingerprint: fp, workerName: "sleepy", numa: .unbound, experts: Array(0..<8), proof: [])
            }
            lock.lock(); held.append(c); lock.unlock()
        }
    }

    func stop() {
        lock.lock(); stopped = true; let c = held; held = []; lock.unlock()
        c.forEach { $0.close() }
        listener.close()
    }
}
