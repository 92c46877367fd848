import DiT
import Foundation
import Tensor
import XCTest
import Wire
@testable import Cluster

final class NUMATests: XCTestCase {
    override func tearDown() { NUMA.unbind() }

    func testBindToNodeZeroAndVerifyThreadAndPages() throws {
        try XCTSkipUnless(NUMA.isAvailable, "libnuma reports NUMA unavailable on this machine")
        XCTAssertTrue(NUMA.presentNodes().contains(0))
        try NUMA.bind(node: 0)
        XCTAssertEqual(NUMA.currentNode(), 0)
        // Pages allocated and touched after binding live on node 0.
        let n = 1 << 20
        let p = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { p.deallocate() }
        p.initialize(repeating: 1, count: n)
        let report = NUMA.report(requestedNode: 0, weightPages: [UnsafeRawPointer(p), UnsafeRawPointer(p + n - 1)])
        XCTAssertEqual(report, NUMAReport(requestedNode: 0, cpuNode: 0, pageNode: 0, verified: true))
        // A thread started after binding inherits it.
        final class Box: @unchecked Sendable { var node = -2 }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread { box.node = NUMA.currentNode(); done.signal() }
        done.wait()
        XCTAssertEqual(box.node, 0)
    }

    func testStrictBindWorks() throws {
        try XCTSkipUnless(NUMA.isAvailable, "libnuma reports NUMA unavailable on this machine")
        try NUMA.bind(node: 0, strict: true)
        XCTAssertEqual(NUMA.currentNode(), 0)
    }

    func testAbsentNodeIsAClearError() {
        let absent = (NUMA.presentNodes().max() ?? 0) + 7
        XCTAssertThrowsError(try NUMA.bind(node: absent)) { e in
            if NUMA.isAvailable {
                XCTAssertEqual(e as? NUMAError, .nodeAbsent(node: absent, present: NUMA.presentNodes()))
                XCTAssertTrue("\(e)".contains("NUMA node \(absent) is not present on this machine"), "\(e)")
            } else {
                XCTAssertEqual(e as? NUMAError, .unavailable)
            }
        }
    }

    /// The tiny model's weights written as a checkpoint, so that expert matrices start as views of the page cache.
    func tinyCheckpoint() throws -> String {
        let w = try DiTWeights(config: tinyConfig, source: tinySource)
        var writer = SafetensorsWriter()
        for spec in tinyConfig.tensorSpecs {
            let n = spec.shape.reduce(1, *)
            writer.add(spec.key, shape: spec.shape, floats: Array(UnsafeBufferPointer(start: w.vector(spec.key), count: n)))
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("numa-\(UUID().uuidString).safetensors").path
        try writer.write(to: path)
        return path
    }

    /// A worker bound to node 0 serving checkpoint weights copies every hosted expert's matrices into memory bound
    /// to node 0 (policy of the mapping, not just where a page happens to be), with identical bytes; the check in
    /// WELCOME samples every layer and expert, STATS re-checks, and the copies compute the same forward.
    func testBoundWorkerMovesCheckpointExpertsOntoItsNode() throws {
        try XCTSkipUnless(NUMA.isAvailable, "libnuma reports NUMA unavailable on this machine")
        let path = try tinyCheckpoint()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let experts = [1, 2, 5]
        let worker = try ExpertWorker.start(config: tinyConfig, source: .safetensors(path: path), experts: experts,
                                            options: WorkerOptions(name: "n0", port: 0, numaNode: 0, secret: testSecret))
        defer { worker.stop(); worker.waitForConnections() }
        XCTAssertTrue(worker.weights.isMaterialized)
        let plain = try DiTWeights(config: tinyConfig, source: .safetensors(path: path), scope: .experts(Set(experts)))
        for l in 0..<tinyConfig.depth {
            for e in experts {
                let got = worker.weights.expert(layer: l, expert: e), want = plain.expert(layer: l, expert: e)
                for (g, w) in [(got.gateUp, want.gateUp), (got.down, want.down)] {
                    let bytes = g.count * g.dtype.byteSize
                    XCTAssertEqual(NUMA.policyNode(g.base), 0, "layer \(l) expert \(e): memory not bound to node 0")
                    XCTAssertEqual(NUMA.policyNode(g.base + (bytes - 1)), 0)
                    XCTAssertEqual(NUMA.pageNode(g.base), 0)
                    XCTAssertEqual(memcmp(g.base, w.base, bytes), 0, "layer \(l) expert \(e): copy differs")
                }
                // The unbound load leaves them in the file's mapping (default policy).
                XCTAssertEqual(NUMA.policyNode(want.gateUp.base), -1)
            }
        }
        XCTAssertEqual(worker.weightSamples.count, tinyConfig.depth * experts.count * 4)
        XCTAssertEqual(worker.numa, NUMAReport(requestedNode: 0, cpuNode: 0, pageNode: 0, verified: true))
        XCTAssertTrue(worker.statsReply().numa.verified)
        // The copies serve the same forward as the in-process engine (1e-5 relative, see maxRelativeViolation).
        worker.serveInBackground()
        let rest = Array(Set(0..<8).subtracting(experts)).sorted()
        let others = try TestCluster([("rest", rest)], source: .safetensors(path: path))
        var hosts = others.hosts
        hosts.entries.append(HostEntry(name: "n0", address: "127.0.0.1", port: worker.port, numaNode: 0, experts: experts, line: 2))
        let local = try DiTModel(config: tinyConfig, source: .safetensors(path: path))
        let remote = try DiTModel(config: tinyConfig, source: .safetensors(path: path))
        remote.executor = try ClusterExpertExecutor(hosts: hosts, expertCount: 8,
                                                    options: ClusterOptions(secret: testSecret,
                                                                            fingerprint: ModelFingerprint(hashing: remote.weights.fingerprint)))
        let input = TinyInput(batch: 2)
        XCTAssertTrue(maxRelativeViolation(try input.run(local), try input.run(remote)).ok)
        XCTAssertGreaterThan(worker.statsReply().experts.reduce(0) { $0 + $1.rows }, 0)
    }

    /// Each STATS check reads a bounded, rotating subset of the samples, and together they cover all of them.
    func testNumaChecksRotateThroughAllSamples() throws {
        try XCTSkipUnless(NUMA.isAvailable, "libnuma reports NUMA unavailable on this machine")
        let worker = try ExpertWorker.start(config: tinyConfig, source: tinySource, experts: Array(0..<8),
                                            options: WorkerOptions(name: "n0", port: 0, numaNode: 0, secret: testSecret))
        defer { worker.stop() }
        let n = worker.weightSamples.count
        XCTAssertEqual(n, tinyConfig.depth * 8 * 4)
        XCTAssertGreaterThan(n, ExpertWorker.samplesPerCheck)
        let stride = (n + ExpertWorker.samplesPerCheck - 1) / ExpertWorker.samplesPerCheck
        var seen = Set<Int>()
        for _ in 0..<stride {
            let picked = worker.nextSampleIndices()
            XCTAssertLessThanOrEqual(picked.count, ExpertWorker.samplesPerCheck)
            seen.formUnion(picked)
        }
        XCTAssertEqual(seen, Set(0..<n), "successive checks cover every layer and expert")
        XCTAssertTrue(worker.numaCheck().verified)
        XCTAssertEqual(NUMA.policyNode(worker.weights.expert(layer: tinyConfig.depth - 1, expert: 7).down.base), 0)
    }
}
