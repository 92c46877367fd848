import DiT
import Foundation
import Tensor
import Wire
import XCTest
@testable import Cluster

final class ClusterExecutorTests: XCTestCase {
    override func setUp() { Parallel.threads = 2; BLASThreads.set(1) }

    /// Distributed output equals the in-process engine's, with identical routing, for exact codecs.
    func testDistributedEqualsLocal() throws {
        let local = try DiTModel(config: tinyConfig, source: tinySource)
        let localRouting = RoutingRecorder()
        local.observer = localRouting
        let input = TinyInput(batch: 3)
        let want = try input.run(local)

        let cluster = try TestCluster([("w0", [0, 1, 2, 3]), ("w1", [4, 5, 6, 7])])
        for codec in [ShardOptions.raw, ShardOptions(dtype: .f32, shuffle: true, compression: .lz4), .default] {
            let remote = try DiTModel(config: tinyConfig, source: tinySource)
            let routing = RoutingRecorder()
            remote.observer = routing
            let exec = try cluster.executor(codec: codec, weights: remote.weights)
            remote.executor = exec
            let got = try input.run(remote)
            XCTAssertEqual(routing.experts, localRouting.experts, "routing must be identical (\(codec))")
            let (ok, worst) = maxRelativeViolation(want, got)
            XCTAssertTrue(ok, "distributed differs from local by \(worst) relative (\(codec))")
            XCTAssertEqual(exec.timing.layers, tinyConfig.depth)
            XCTAssertGreaterThan(exec.timing.bytesSent, 0)
            XCTAssertEqual(exec.timing.retries, 0)
            // Every routed row was served by the worker that owns its expert.
            let stats = try exec.stats()
            XCTAssertEqual(stats.map(\.workerName), ["w0", "w1"])
            XCTAssertEqual(stats[0].experts.map(\.expert), [0, 1, 2, 3])
            exec.close()
        }
        // Rows served in total over the three runs = 3 runs × depth × tokens × K.
        let served = cluster.workers.flatMap { $0.statsReply().experts }.reduce(0) { $0 + $1.rows }
        XCTAssertEqual(served, UInt64(3 * tinyConfig.depth * 3 * tinyConfig.tokens * tinyConfig.numExpertsPerTok))
    }

    func testLossyCodecStaysClose() throws {
        let local = try DiTModel(config: tinyConfig, source: tinySource)
        let input = TinyInput(batch: 2)
        let want = try input.run(local)
        let cluster = try TestCluster([("w0", Array(0..<8))])
        let remote = try DiTModel(config: tinyConfig, source: tinySource)
        remote.executor = try cluster.executor(codec: ShardOptions(dtype: .bf16, shuffle: true, compression: .lz4),
                                               weights: remote.weights)
        let got = try input.run(remote)
        // BF16 shards (relative error ≤ 2⁻⁸ per value, in every layer's expert input and output) move the output
        // by less than 1 % in norm (‖a − b‖ / ‖a‖), and by more than nothing: the cast really happened.
        var num: Double = 0, den: Double = 0
        for i in 0..<want.count { num += Double((want[i] - got[i]) * (want[i] - got[i])); den += Double(want[i] * want[i]) }
        let rel = (num / den).squareRoot()
        XCTAssertLessThan(rel, 1e-2, "bf16 shards changed the output by \(rel) in norm")
        XCTAssertGreaterThan(rel, 1e-6)
    }

    /// A worker dies in the middle of a forward; its experts have a replica, so the forward completes exactly.
    func testKilledWorkerIsSurvivedWithAReplica() throws {
        let local = try DiTModel(config: tinyConfig, source: tinySource)
        let input = TinyInput(batch: 2)
        let want = try input.run(local)
        let cluster = try TestCluster([("w0", Array(0..<8)), ("w1", [4, 5, 6, 7]), ("w2", [0, 1, 2, 3])])
        let remote = try DiTModel(config: tinyConfig, source: tinySource)
        let exec = try cluster.executor(weights: remote.weights)
        remote.executor = HookedExecutor(inner: exec, beforeLayer: 1) { cluster.workers[1].stop() }
        let got = try input.run(remote)
        XCTAssertTrue(maxRelativeViolation(want, got).ok)
        XCTAssertGreaterThanOrEqual(exec.timing.retries, 1, "w1's in-flight shards were retried")
        XCTAssertEqual(exec.workers.map(\.alive), [true, false, true])
        // The next forward runs on the survivors only.
        XCTAssertTrue(maxRelativeViolation(want, try input.run(remote)).ok)
    }

    /// A replica-backed worker is killed, restarted on the same port, and serves again: the executor reconnects
    /// after its back-off, and never before.
    func testDeadWorkerIsReconnectedAfterItsBackoff() throws {
        let local = try DiTModel(config: tinyConfig, source: tinySource)
        let input = TinyInput(batch: 2)
        let want = try input.run(local)
        let cluster = try TestCluster([("w0", [0, 1, 2, 3]), ("w1", [4, 5, 6, 7]), ("w2", [4, 5, 6, 7])])
        let remote = try DiTModel(config: tinyConfig, source: tinySource)
        let fp = ModelFingerprint(hashing: remote.weights.fingerprint)
        let exec = try ClusterExpertExecutor(hosts: cluster.hosts, expertCount: 8,
                                             options: ClusterOptions(secret: testSecret, fingerprint: fp,
                                                                     reconnectBackoff: 0.5))
        remote.executor = exec
        XCTAssertTrue(maxRelativeViolation(want, try input.run(remote)).ok)
        let port = cluster.workers[1].port
        cluster.workers[1].stop()
        XCTAssertTrue(cluster.workers[1].waitForConnections())
        let t0 = Date()
        XCTAssertTrue(maxRelativeViolation(want, try input.run(remote)).ok, "w2 took over")
        let forwardTime = Date().timeIntervalSince(t0)
        XCTAssertEqual(exec.workers.map(\.alive), [true, false, true])
        XCTAssertEqual(exec.deadWorkers.map(\.name), ["w1"])
        XCTAssertTrue(exec.deadWorkers[0].reason.contains("shuttingDown") || exec.deadWorkers[0].reason.contains("closed"),
                      exec.deadWorkers[0].reason)
        // Restart w1 on the same port. Within the back-off the executor leaves it alone.
        let reborn = try ExpertWorker.start(config: tinyConfig, source: tinySource, experts: [4, 5, 6, 7],
                                            options: WorkerOptions(name: "w1", port: port, secret: testSecret))
        reborn.serveInBackground()
        cluster.workers[1] = reborn
        if exec.deadWorkers[0].retryIn > 2 * forwardTime + 0.05 {
            XCTAssertTrue(maxRelativeViolation(want, try input.run(remote)).ok)
            XCTAssertEqual(exec.timing.reconnects, 0, "reconnected before the back-off had passed")
            XCTAssertEqual(reborn.statsReply().connections, 0)
        }
        Thread.sleep(forTimeInterval: exec.deadWorkers[0].retryIn + 0.02)
        // The reconnect starts in the first layer after the back-off and runs on w1's own thread; w1 gets work
        // from the first layer after its handshake.
        for _ in 0..<50 where exec.timing.reconnects == 0 || reborn.statsReply().experts.allSatisfy({ $0.rows == 0 }) {
            XCTAssertTrue(maxRelativeViolation(want, try input.run(remote)).ok)
            Thread.sleep(forTimeInterval: 0.01)
        }
        XCTAssertEqual(exec.timing.reconnects, 1)
        XCTAssertEqual(exec.workers.map(\.alive), [true, true, true])
        XCTAssertTrue(exec.deadWorkers.isEmpty)
        XCTAssertGreaterThan(reborn.statsReply().experts.reduce(0) { $0 + $1.rows }, 0, "the restarted worker served rows")
    }

    /// A dead worker that stays down is retried with a growing back-off and keeps its reason.
    func testReconnectBackoffGrowsWhileTheWorkerStaysDown() throws {
        let cluster = try TestCluster([("w0", Array(0..<8)), ("w1", Array(0..<8))])
        let remote = try DiTModel(config: tinyConfig, source: tinySource)
        let exec = try ClusterExpertExecutor(hosts: cluster.hosts, expertCount: 8,
                                             options: ClusterOptions(secret: testSecret,
                                                                     fingerprint: ModelFingerprint(hashing: remote.weights.fingerprint),
                                                                     reconnectBackoff: 0.05, maxReconnectBackoff: 0.2))
        remote.executor = exec
        cluster.workers[1].stop()
        XCTAssertTrue(cluster.workers[1].waitForConnections())
        let input = TinyInput(batch: 1)
        var backoffs: [Double] = []
        for _ in 0..<4 {
            Thread.sleep(forTimeInterval: 0.25)   // past any back-off up to the cap
            _ = try input.run(remote)
            backoffs.append(exec.remotes[1].backoff)
        }
        XCTAssertEqual(exec.workers.map(\.alive), [true, false])
        XCTAssertEqual(exec.timing.reconnects, 0)
        XCTAssertEqual(backoffs.last, 0.2, "\(backoffs)")
        XCTAssertEqual(backoffs.sorted(), backoffs, "non-decreasing: \(backoffs)")
        XCTAssertTrue(exec.deadWorkers[0].reason.contains("w1"), exec.deadWorkers[0].reason)
    }

    /// Without a replica the forward fails with an error naming the dead worker, promptly.
    func testKilledWorkerWithoutReplicaIsReportedByName() throws {
        let cluster = try TestCluster([("w0", [0, 1, 2, 3]), ("w1", [4, 5, 6, 7])])
        let remote = try DiTModel(config: tinyConfig, source: tinySource)
        let exec = try cluster.executor(requestTimeout: 5, weights: remote.weights)
        remote.executor = HookedExecutor(inner: exec, beforeLayer: 1) { cluster.workers[1].stop() }
        let t0 = Date()
        XCTAssertThrowsError(try TinyInput(batch: 2).run(remote)) { e in
            guard case let .workerFailed(worker, endpoint, _, experts)? = e as? ClusterError else { return XCTFail("\(e)") }
            XCTAssertEqual(worker, "w1")
            XCTAssertEqual(endpoint, "127.0.0.1:\(cluster.workers[1].port)")
            XCTAssertFalse(experts.isEmpty)
            XCTAssertTrue(Set(experts).isSubset(of: [4, 5, 6, 7]))
            XCTAssertTrue("\(e)".contains("worker w1"), "\(e)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 5)
    }

    /// A worker that accepts the request but never answers: the request deadline turns it into an error.
    func testHungWorkerTimesOutInsteadOfHanging() throws {
        let remote = try DiTModel(config: tinyConfig, source: tinySource)
        let fp = ModelFingerprint(hashing: remote.weights.fingerprint)
        let listener = try WireListener(host: "127.0.0.1", port: 0)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            defer { done.signal() }
            guard let c = try? listener.accept(timeout: 5) else { return }
            _ = try? Handshake.server(c, secret: testSecret, fingerprint: fp) { _ in
                Welcome(nonce: [], fingerprint: fp, workerName: "sleepy", numa: .unbound, experts: Array(0..<8), proof: [])
            }
            _ = try? c.receive(timeout: 5)   // take the request, never answer
            Thread.sleep(forTimeInterval: 1.5)
        }
        let hosts = HostsFile(path: "h", entries: [HostEntry(name: "sleepy", address: "127.0.0.1", port: listener.port,
                                                              numaNode: 0, experts: Array(0..<8), line: 1)])
        let exec = try ClusterExpertExecutor(hosts: hosts, expertCount: 8,
                                             options: ClusterOptions(secret: testSecret, fingerprint: fp, requestTimeout: 0.5))
        remote.executor = exec
        let t0 = Date()
        XCTAssertThrowsError(try TinyInput(batch: 1).run(remote)) { e in
            guard case let .workerFailed(worker, _, reason, _)? = e as? ClusterError else { return XCTFail("\(e)") }
            XCTAssertEqual(worker, "sleepy")
            XCTAssertTrue(reason.contains("timeout"), reason)
        }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 1.4)
        done.wait()
    }

    func testWrongSecretAndWrongModelAreRefused() throws {
        let cluster = try TestCluster([("w0", Array(0..<8))])
        let weights = try DiTWeights(config: tinyConfig, source: tinySource)
        let wrong = try WireSecret(bytes: Array("some other secret entirely".utf8))
        XCTAssertThrowsError(try cluster.executor(secret: wrong, weights: weights)) { e in
            guard case let .connectFailed(worker, _, reason)? = e as? ClusterError else { return XCTFail("\(e)") }
            XCTAssertEqual(worker, "w0")
            XCTAssertTrue(reason.contains("authentication failed"), reason)
        }
        let other = ModelFingerprint(hashing: "a different model")
        XCTAssertThrowsError(try cluster.executor(fingerprint: other, weights: weights)) { e in
            guard case let .connectFailed(worker, _, reason)? = e as? ClusterError else { return XCTFail("\(e)") }
            XCTAssertEqual(worker, "w0")
            XCTAssertTrue(reason.contains("fingerprint"), reason)
        }
        // The worker is still healthy for a coordinator with the right secret.
        XCTAssertNoThrow(try cluster.executor(weights: weights).close())
    }

    func testHostsListingExpertsTheWorkerDoesNotLoadIsRefused() throws {
        let cluster = try TestCluster([("w0", [0, 1, 2, 3]), ("w1", [4, 5, 6, 7])])
        cluster.hosts.entries[0].experts = [0, 1, 2, 3, 4]
        let weights = try DiTWeights(config: tinyConfig, source: tinySource)
        XCTAssertThrowsError(try cluster.executor(weights: weights)) { e in
            XCTAssertTrue("\(e)".contains("worker w0"), "\(e)")
            XCTAssertTrue("\(e)".contains("loads 0-3"), "\(e)")
        }
    }

    /// Garbage, truncated frames and requests for foreign experts get ERROR and a closed connection; the worker
    /// keeps serving everyone else.
    func testWorkerSurvivesMalformedInput() throws {
        let cluster = try TestCluster([("w0", [0, 1, 2, 3]), ("w1", [4, 5, 6, 7])])
        let port = cluster.workers[0].port
        // 1. Garbage before the handshake.
        var c = try WireConnection.connect(host: "127.0.0.1", port: port)
        _ = [UInt8](repeating: 0x41, count: 64).withUnsafeBytes { send(c.fd, $0.baseAddress!, 64, Int32(MSG_NOSIGNAL)) }
        var f = try c.receive(timeout: 5)
        XCTAssertEqual(try f.decode(ErrorMessage.self).code, WireErrorCode.badMagic.rawValue)
        XCTAssertThrowsError(try c.receive(timeout: 5))
        // 2. Authenticated, then an EXPERT for an expert w0 does not host.
        c = try WireConnection.connect(host: "127.0.0.1", port: port)
        let fp = cluster.workers[0].fingerprint
        _ = try Handshake.client(c, secret: testSecret, fingerprint: fp, peerName: "t")
        let act = [Float](repeating: 1, count: 64), gate: [Float] = [1]
        try c.send(.expert, requestID: 3) { b in
            try ExpertMessage.encodeRequest(into: b, layer: 0, dim: 64, groups: [ExpertGroup(expert: 6, rows: 1)],
                                            activations: act, gate: gate, codec: ShardCodec(), options: .raw)
        }
        f = try c.receive(timeout: 5)
        XCTAssertEqual(f.header.requestID, 3)
        let err = try f.decode(ErrorMessage.self)
        XCTAssertEqual(err.code, WireErrorCode.expertNotHosted.rawValue)
        XCTAssertTrue(err.text.contains("expert 6"), err.text)
        // 3. Authenticated, then a frame with a corrupted payload checksum.
        c = try WireConnection.connect(host: "127.0.0.1", port: port)
        _ = try Handshake.client(c, secret: testSecret, fingerprint: fp, peerName: "t")
        var bad = [UInt8](repeating: 0, count: Frame.headerSize) + [1, 2, 3]
        bad.withUnsafeMutableBytes {
            Frame.writeHeader(to: $0.baseAddress!, rawType: MessageType.ping.rawValue, version: Frame.version, flags: 0, requestID: 1,
                              payloadLength: 3, payloadChecksum: 12345)
        }
        _ = bad.withUnsafeBytes { send(c.fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
        f = try c.receive(timeout: 5)
        XCTAssertEqual(try f.decode(ErrorMessage.self).code, WireErrorCode.badPayloadChecksum.rawValue)
        // 4. A truncated frame followed by a hang-up.
        c = try WireConnection.connect(host: "127.0.0.1", port: port)
        _ = Array(bad[0..<10]).withUnsafeBytes { send(c.fd, $0.baseAddress!, 10, Int32(MSG_NOSIGNAL)) }
        c.close()
        // The worker still serves a proper coordinator.
        let remote = try DiTModel(config: tinyConfig, source: tinySource)
        remote.executor = try cluster.executor(weights: remote.weights)
        let local = try DiTModel(config: tinyConfig, source: tinySource)
        let input = TinyInput(batch: 1)
        XCTAssertTrue(maxRelativeViolation(try input.run(local), try input.run(remote)).ok)
        XCTAssertFalse(cluster.workers[0].isStopping)
    }
}

extension ClusterExecutorTests {
    /// Seeded random mutations of valid EXPERT frames (re-sealed with correct checksums so they reach the worker's
    /// message handling): each connection gets an EXPERT_RESULT or an ERROR, never a crash or a hang, and the
    /// worker then serves an exact forward.
    func testWorkerSurvivesRandomlyMutatedExpertFrames() throws {
        let cluster = try TestCluster([("w0", Array(0..<8))])
        let port = cluster.workers[0].port, fp = cluster.workers[0].fingerprint
        var rng = SplitMix64(seed: 2024)
        let act = (0..<(3 * 64)).map { Float($0 % 17) / 17 }, gate: [Float] = [0.5, 0.25, 1]
        let b = WireBuffer()
        try ExpertMessage.encodeRequest(into: b, layer: 1, dim: 64, groups: [ExpertGroup(expert: 2, rows: 2), ExpertGroup(expert: 5, rows: 1)],
                                        activations: act, gate: gate, codec: ShardCodec(),
                                        options: ShardOptions(dtype: .f32, shuffle: true, compression: .lz4))
        let valid = Array(b.bytes)
        var results = 0, errors = 0
        for _ in 0..<40 {
            var payload = valid
            for _ in 0..<rng.below(4) + 1 { payload[rng.below(payload.count)] = UInt8(truncatingIfNeeded: rng.next()) }
            let c = try WireConnection.connect(host: "127.0.0.1", port: port)
            _ = try Handshake.client(c, secret: testSecret, fingerprint: fp, peerName: "fuzz")
            try payload.withUnsafeBytes { try c.send(.expert, requestID: 9, payload: $0) }
            let f = try c.receive(timeout: 5)
            XCTAssertEqual(f.header.requestID, 9)
            if f.header.type == .expertResult { results += 1 } else {
                XCTAssertEqual(f.header.type, .error); errors += 1
            }
            c.close()
        }
        XCTAssertEqual(results + errors, 40)
        XCTAssertGreaterThan(errors, 0)
        let local = try DiTModel(config: tinyConfig, source: tinySource)
        let remote = try DiTModel(config: tinyConfig, source: tinySource)
        remote.executor = try cluster.executor(weights: remote.weights)
        let input = TinyInput(batch: 1)
        XCTAssertTrue(maxRelativeViolation(try input.run(local), try input.run(remote)).ok)
    }
}

extension SplitMix64 {
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}
