import DiT
import Foundation
import Wire
import XCTest
@testable import Cluster

/// Deadlines, the connection limit, decoded-size limits and weight checks of the worker (and the coordinator's
/// receive deadline). Each test reproduces a way a peer or a file could hang, exhaust or poison a worker.
final class WorkerRobustnessTests: XCTestCase {
    /// Writes the first `count` bytes of `bytes` to the socket.
    func sendRaw(_ c: WireConnection, _ bytes: [UInt8], count: Int? = nil) {
        let n = count ?? bytes.count
        _ = bytes.withUnsafeBytes { send(c.fd, $0.baseAddress!, n, Int32(MSG_NOSIGNAL)) }
    }

    /// An authenticated peer that stops in the middle of a frame (header or payload) loses its connection after
    /// `frameTimeout`, not after the idle limit (an hour by default); the worker serves others meanwhile.
    func testPeerStallingMidFrameIsDroppedAfterTheFrameDeadline() throws {
        let cluster = try TestCluster([("w0", [0, 1])]) { $0.frameTimeout = 0.3 }
        let w = cluster.workers[0]
        let ping = try frameBytes(type: .ping, payload: [UInt8](repeating: 7, count: 100))
        for cut in [10, Frame.headerSize + 40] {   // inside the header; inside the payload
            let c = try authenticatedClient(w)
            sendRaw(c, ping, count: cut)
            let t0 = Date()
            let other = try authenticatedClient(w)
            try other.send(Ping(data: [1, 2, 3]), requestID: 9)
            XCTAssertEqual(try other.receive(timeout: 5).decode(Pong.self).data, [1, 2, 3])
            // The worker gives up on the frame and closes: the client sees the end of the stream well before its
            // own 10 s wait (without the deadline it would wait out the idle limit).
            XCTAssertThrowsError(try c.receive(timeout: 10)) { e in
                XCTAssertEqual(e as? WireError, .closed, "cut at \(cut): \(e)")
            }
            XCTAssertLessThan(Date().timeIntervalSince(t0), 5, "cut at \(cut)")
        }
    }

    /// A peer that starts a HELLO and stops gets ERROR timeout once the handshake deadline passes.
    func testPeerStallingInTheHandshakeGetsATimeout() throws {
        let cluster = try TestCluster([("w0", [0])]) { $0.handshakeTimeout = 0.3 }
        let hello = try frameBytes(Hello(nonce: [UInt8](repeating: 1, count: 32), fingerprint: .none, peerName: "slow"))
        let c = try WireConnection.connect(host: "127.0.0.1", port: cluster.workers[0].port)
        sendRaw(c, hello, count: hello.count - 5)
        let f = try c.receive(timeout: 10)
        let e = try f.decode(ErrorMessage.self)
        XCTAssertEqual(e.code, WireErrorCode.timeout.rawValue)
        XCTAssertTrue(e.text.contains("0.3 s"), e.text)
        XCTAssertThrowsError(try c.receive(timeout: 5)) { XCTAssertEqual($0 as? WireError, .closed) }
    }

    /// The coordinator's receive has a deadline too: a worker that sends half an EXPERT_RESULT and stalls is a
    /// failed worker after `requestTimeout`, and the forward reports it by name.
    func testCoordinatorGivesUpOnAWorkerStallingMidFrame() throws {
        let remote = try DiTModel(config: tinyConfig, source: tinySource)
        let fp = ModelFingerprint(hashing: remote.weights.fingerprint)
        let listener = try WireListener(host: "127.0.0.1", port: 0)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            defer { done.signal() }
            guard let c = try? listener.accept(timeout: 5) else { return }
            _ = try? Handshake.server(c, secret: testSecret, fingerprint: fp) { _ in
                Welcome(nonce: [], fingerprint: fp, workerName: "stalling", numa: .unbound, experts: Array(0..<8), proof: [])
            }
            guard let req = try? c.receive(timeout: 5) else { return }
            // A result header announcing 4 KiB, then 100 bytes of it, then nothing.
            var partial = [UInt8](repeating: 0, count: Frame.headerSize + 100)
            partial.withUnsafeMutableBytes {
                Frame.writeHeader(to: $0.baseAddress!, rawType: MessageType.expertResult.rawValue, version: Frame.version,
                                  flags: 0, requestID: req.header.requestID, payloadLength: 4096, payloadChecksum: 0)
            }
            _ = partial.withUnsafeBytes { send(c.fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            Thread.sleep(forTimeInterval: 1.5)
        }
        let hosts = HostsFile(path: "h", entries: [HostEntry(name: "stalling", address: "127.0.0.1", port: listener.port,
                                                              numaNode: 0, experts: Array(0..<8), line: 1)])
        let exec = try ClusterExpertExecutor(hosts: hosts, expertCount: 8,
                                             options: ClusterOptions(secret: testSecret, fingerprint: fp, requestTimeout: 0.3))
        remote.executor = exec
        let t0 = Date()
        XCTAssertThrowsError(try TinyInput(batch: 1).run(remote)) { e in
            guard case let .workerFailed(worker, _, reason, _)? = e as? ClusterError else { return XCTFail("\(e)") }
            XCTAssertEqual(worker, "stalling")
            XCTAssertTrue(reason.contains("timeout"), reason)
        }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 1.4, "gave up at the deadline, not when the worker left")
        exec.close()
        done.wait()
    }

    /// Many idle unauthenticated connections: those beyond `maxConnections` get ERROR tooManyConnections and are
    /// closed, the ones within the limit cost no thread, an authenticated client keeps being served throughout,
    /// and once the idle ones leave a new client is served.
    func testConnectionLimitRefusesExtrasAndIdleConnectionsCostNoThread() throws {
        let limit = 16, idleCount = 100
        let cluster = try TestCluster([("w0", [0, 1])]) { $0.maxConnections = limit }
        let w = cluster.workers[0]
        let client = try authenticatedClient(w)
        try client.send(Ping(data: [0]), requestID: 1)
        _ = try client.receive(timeout: 5).decode(Pong.self)
        let threadsBefore = threadCount()
        var idle: [WireConnection] = []
        for _ in 0..<idleCount { idle.append(try WireConnection.connect(host: "127.0.0.1", port: w.port)) }
        let expectedRefused = idleCount - (limit - 1)   // the authenticated client holds one slot
        let end = Date().addingTimeInterval(5)
        while w.refusedConnections < expectedRefused && Date() < end { Thread.sleep(forTimeInterval: 0.01) }
        XCTAssertEqual(w.refusedConnections, expectedRefused)
        var refusedSeen = 0, waiting = 0
        for c in idle {
            guard readable(c.fd, timeout: 0.01) else { waiting += 1; continue }
            let e = try c.receive(timeout: 1).decode(ErrorMessage.self)
            XCTAssertEqual(e.code, WireErrorCode.tooManyConnections.rawValue)
            XCTAssertTrue(e.text.contains("limit is \(limit)"), e.text)
            XCTAssertThrowsError(try c.receive(timeout: 1)) { XCTAssertEqual($0 as? WireError, .closed) }
            refusedSeen += 1
        }
        XCTAssertEqual(refusedSeen, expectedRefused)
        XCTAssertEqual(waiting, limit - 1, "connections within the limit wait for their handshake")
        XCTAssertLessThanOrEqual(threadCount(), threadsBefore + 2, "\(limit - 1) handshaking connections, no thread each")
        // The authenticated client is served while the limit is reached; a newcomer is refused.
        try client.send(Ping(data: [1, 2]), requestID: 2)
        XCTAssertEqual(try client.receive(timeout: 5).decode(Pong.self).data, [1, 2])
        XCTAssertThrowsError(try authenticatedClient(w)) { e in
            guard case .peer(let code, _)? = e as? WireError else { return XCTFail("\(e)") }
            XCTAssertEqual(code, WireErrorCode.tooManyConnections.rawValue)
        }
        // The idle ones leave: their slots are free again.
        idle.forEach { $0.close() }
        let end2 = Date().addingTimeInterval(5)
        var fresh: WireConnection?
        while fresh == nil && Date() < end2 {
            fresh = try? authenticatedClient(w)
            if fresh == nil { Thread.sleep(forTimeInterval: 0.02) }
        }
        let c = try XCTUnwrap(fresh, "a new client is served once the idle connections are gone")
        try c.send(Ping(data: [3]), requestID: 3)
        XCTAssertEqual(try c.receive(timeout: 5).decode(Pong.self).data, [3])
    }

    /// A small EXPERT frame whose LZ4 shard declares 256 MiB of zeros (1 MiB rows × 64) is refused from its
    /// declared counts, before any buffer is sized or anything is decompressed; the worker's memory stays put and
    /// it serves the next client.
    func testCompressedBombIsRefusedBeforeDecompressing() throws {
        let cluster = try TestCluster([("w0", [0, 1])])
        let w = cluster.workers[0]
        let dim = 64, rows = 1 << 20
        let decoded = rows * dim * 4
        let block = lz4ZeroBlock(decodedBytes: decoded)
        XCTAssertLessThan(block.count, 1_100_000)
        let c = try authenticatedClient(w)
        let rssBefore = residentBytes()
        try c.send(.expert, requestID: 5) { b in
            b.append(UInt32(0)); b.append(UInt32(dim))
            b.append(UInt32(1)); b.append(UInt32(0)); b.append(UInt32(rows))   // one group: expert 0, 2^20 rows
            b.append(UInt8(0)); b.append(UInt8(0)); b.append(UInt8(1)); b.append(UInt8(0))   // f32, no shuffle, LZ4
            b.append(UInt32(rows * dim)); b.append(UInt32(block.count))
            b.append(bytes: block)
            b.append(UInt8(0)); b.append(UInt8(0)); b.append(UInt8(0)); b.append(UInt8(0))   // gate: raw f32
            b.append(UInt32(rows)); b.append(UInt32(rows * 4))
            b.append(bytes: [UInt8](repeating: 0, count: rows * 4))
        }
        let f = try c.receive(timeout: 10)
        XCTAssertEqual(f.header.requestID, 5)
        let e = try f.decode(ErrorMessage.self)
        XCTAssertEqual(e.code, WireErrorCode.malformedPayload.rawValue)
        XCTAssertTrue(e.text.contains("maxDecodedBytes"), e.text)
        XCTAssertTrue(e.text.contains("\(decoded) bytes"), e.text)
        let grown = residentBytes() - rssBefore
        XCTAssertLessThan(grown, 48 << 20, "RSS grew \(grown) bytes for one refused frame")
        let other = try authenticatedClient(w)
        try other.send(Ping(data: [4]), requestID: 1)
        XCTAssertEqual(try other.receive(timeout: 5).decode(Pong.self).data, [4])
    }

    /// A worker refuses to start on a checkpoint whose hosted experts hold NaN or Inf, naming the tensor; a worker
    /// hosting only other experts of the same file starts.
    func testWorkerRefusesNonFiniteHostedExperts() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("moebench-nonfinite-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = "blocks.1.moe.experts.2.up_proj.weight"
        var writer = SafetensorsWriter()
        var s: UInt32 = 1
        for spec in tinyConfig.tensorSpecs {
            var values = (0..<spec.shape.reduce(1, *)).map { _ -> Float in
                s = s &* 1_664_525 &+ 1_013_904_223
                return Float(Int(s >> 8) % 2001 - 1000) * 1e-5
            }
            if spec.key == bad { values[5] = .infinity }
            writer.add(spec.key, shape: spec.shape, floats: values)
        }
        let path = dir.appendingPathComponent("w.safetensors").path
        try writer.write(to: path)
        let options = WorkerOptions(name: "w", port: 0, secret: testSecret)
        XCTAssertThrowsError(try ExpertWorker.start(config: tinyConfig, source: .safetensors(path: path), experts: [2, 3],
                                                    options: options)) { e in
            XCTAssertEqual(e as? DiTError, .nonFiniteWeight(path: path, key: bad, index: 5, value: "+Inf", count: 1))
        }
        let ok = try ExpertWorker.start(config: tinyConfig, source: .safetensors(path: path), experts: [0, 1], options: options)
        ok.stop()
    }
}
