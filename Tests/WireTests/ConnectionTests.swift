import Foundation
import XCTest
@testable import Wire

/// Loopback tests of the blocking connection and the authenticated handshake.
final class ConnectionTests: XCTestCase {
    let secret = try! WireSecret(bytes: Array("correct horse battery staple".utf8))
    let fp = ModelFingerprint(bytes: [UInt8](repeating: 0xAB, count: 32))

    /// Runs `server` on a background thread for one accepted connection; returns the port and a join function.
    func serveOnce(_ server: @escaping (WireConnection) -> Void) throws -> (port: Int, join: () -> Void) {
        let listener = try WireListener(host: "127.0.0.1", port: 0)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            if let c = try? listener.accept(timeout: 5) { server(c) }
            listener.close()
            done.signal()
        }
        return (listener.port, { XCTAssertEqual(done.wait(timeout: .now() + 10), .success, "server thread did not finish") })
    }

    func welcome(_ h: Hello) -> Welcome {
        Welcome(nonce: [], fingerprint: .none, workerName: "w0", numa: .unbound, experts: [0, 1], proof: [])
    }

    func testHandshakeAcceptsTheRightSecretAndServesPing() throws {
        let secret = self.secret, fp = self.fp
        var serverError: Error?
        let (port, join) = try serveOnce { c in
            do {
                let hello = try Handshake.server(c, secret: secret, fingerprint: fp, welcome: self.welcome)
                XCTAssertEqual(hello.peerName, "test")
                let f = try c.receive(timeout: 5)
                let ping = try f.decode(Ping.self)
                try c.send(Pong(data: ping.data), requestID: f.header.requestID)
            } catch { serverError = error }
        }
        let c = try WireConnection.connect(host: "127.0.0.1", port: port)
        let w = try Handshake.client(c, secret: secret, fingerprint: fp, peerName: "test")
        XCTAssertEqual(w.workerName, "w0"); XCTAssertEqual(w.experts, [0, 1]); XCTAssertEqual(w.fingerprint, fp)
        try c.send(Ping(data: [1, 2, 3]), requestID: 42)
        let f = try c.receive(timeout: 5)
        XCTAssertEqual(f.header.requestID, 42)
        XCTAssertEqual(try f.decode(Pong.self).data, [1, 2, 3])
        join()
        XCTAssertNil(serverError)
    }

    func testWrongSecretIsRefusedOnBothSides() throws {
        let secret = self.secret, fp = self.fp
        var serverError: Error?
        let (port, join) = try serveOnce { c in
            do { _ = try Handshake.server(c, secret: secret, fingerprint: fp, welcome: self.welcome) } catch { serverError = error }
        }
        let c = try WireConnection.connect(host: "127.0.0.1", port: port)
        let wrong = try WireSecret(bytes: Array("not the secret at all".utf8))
        XCTAssertThrowsError(try Handshake.client(c, secret: wrong, fingerprint: fp, peerName: "x")) { e in
            guard case .authFailed? = e as? WireError else { return XCTFail("\(e)") }
        }
        join()
        XCTAssertNotNil(serverError, "the worker must not accept a peer without the secret")
        XCTAssertFalse(c.isOpen)
    }

    /// A peer that echoes the worker's messages but cannot compute the proof gets ERROR authFailed and is
    /// disconnected; an EXPERT before AUTH gets ERROR unexpectedMessage.
    func testPeerWithoutSecretGetsErrorAndIsDisconnected() throws {
        for sendExpertEarly in [false, true] {
            let secret = self.secret, fp = self.fp
            let (port, join) = try serveOnce { c in
                _ = try? Handshake.server(c, secret: secret, fingerprint: fp, welcome: self.welcome)
            }
            let c = try WireConnection.connect(host: "127.0.0.1", port: port)
            try c.send(Hello(nonce: WireSecret.randomBytes(), fingerprint: .none, peerName: "rogue"))
            _ = try c.receive(timeout: 5).decode(Welcome.self)
            if sendExpertEarly {
                try c.send(.expert) { $0.append(UInt32(0)) }
            } else {
                try c.send(Auth(proof: [UInt8](repeating: 7, count: 32)))
            }
            let f = try c.receive(timeout: 5)
            XCTAssertEqual(f.header.type, .error)
            let e = try f.decode(ErrorMessage.self)
            XCTAssertEqual(e.code, sendExpertEarly ? WireErrorCode.unexpectedMessage.rawValue : WireErrorCode.authFailed.rawValue)
            XCTAssertThrowsError(try c.receive(timeout: 5)) { XCTAssertEqual($0 as? WireError, .closed) }
            join()
        }
    }

    func testFingerprintMismatchIsRefused() throws {
        let secret = self.secret, fp = self.fp
        let (port, join) = try serveOnce { c in _ = try? Handshake.server(c, secret: secret, fingerprint: fp, welcome: self.welcome) }
        let c = try WireConnection.connect(host: "127.0.0.1", port: port)
        let other = ModelFingerprint(bytes: [UInt8](repeating: 1, count: 32))
        XCTAssertThrowsError(try Handshake.client(c, secret: secret, fingerprint: other, peerName: "x")) { e in
            XCTAssertEqual((e as? WireError)?.code, .fingerprintMismatch, "\(e)")
        }
        join()
    }

    /// Before READY the limit is `Handshake.maxPayload` (64 KiB), not the connection's: a HELLO announcing 1 MiB
    /// (well under the default 256 MiB) is refused with `frameTooLarge` from its header alone, the receive buffer
    /// never grows past its initial size, and the peer gets ERROR. After the handshake the connection's own limit
    /// applies again.
    func testOversizeHelloIsRefusedBeforeAnyLargeAllocation() throws {
        let secret = self.secret, fp = self.fp
        var serverError: Error?
        var capacityAfter = -1, limitAfter = -1
        let (port, join) = try serveOnce { c in
            do { _ = try Handshake.server(c, secret: secret, fingerprint: fp, welcome: self.welcome) } catch { serverError = error }
            capacityAfter = c.recvBuffer.capacity
            limitAfter = c.limits.maxPayload
        }
        let c = try WireConnection.connect(host: "127.0.0.1", port: port)
        let claimed = 1 << 20
        var h = [UInt8](repeating: 0, count: Frame.headerSize)
        h.withUnsafeMutableBytes {
            Frame.writeHeader(to: $0.baseAddress!, rawType: MessageType.hello.rawValue, version: Frame.version, flags: 0,
                              requestID: 0, payloadLength: UInt32(claimed), payloadChecksum: 0)
        }
        _ = h.withUnsafeBytes { send(c.fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
        let f = try c.receive(timeout: 5)
        let e = try f.decode(ErrorMessage.self)
        XCTAssertEqual(e.code, WireErrorCode.frameTooLarge.rawValue)
        XCTAssertTrue(e.text.contains("\(Handshake.maxPayload)"), e.text)
        join()
        XCTAssertEqual(serverError as? WireError, .frameTooLarge(length: claimed, limit: Handshake.maxPayload))
        XCTAssertLessThanOrEqual(capacityAfter, WireBuffer().capacity, "the receive buffer grew for an unauthenticated peer")
        XCTAssertEqual(limitAfter, WireLimits.default.maxPayload, "the connection's limit is restored after the handshake")

        // The coordinator side applies the same limit to WELCOME.
        let (port2, join2) = try serveOnce { c in
            _ = try? c.receive(timeout: 5)
            var h = [UInt8](repeating: 0, count: Frame.headerSize)
            h.withUnsafeMutableBytes {
                Frame.writeHeader(to: $0.baseAddress!, rawType: MessageType.welcome.rawValue, version: Frame.version,
                                  flags: 0, requestID: 0, payloadLength: UInt32(claimed), payloadChecksum: 0)
            }
            _ = h.withUnsafeBytes { send(c.fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            Thread.sleep(forTimeInterval: 0.2)
        }
        let c2 = try WireConnection.connect(host: "127.0.0.1", port: port2)
        XCTAssertThrowsError(try Handshake.client(c2, secret: secret, fingerprint: fp, peerName: "x")) { e in
            XCTAssertEqual(e as? WireError, .frameTooLarge(length: claimed, limit: Handshake.maxPayload))
        }
        XCTAssertLessThanOrEqual(c2.recvBuffer.capacity, WireBuffer().capacity)
        XCTAssertEqual(c2.limits.maxPayload, WireLimits.default.maxPayload)
        join2()
    }

    func testReceiveTimesOutAndOversizeIsRefusedBeforeAllocation() throws {
        let (port, join) = try serveOnce { c in
            // Say nothing for a while, then send a header announcing 1 GiB.
            Thread.sleep(forTimeInterval: 0.4)
            var h = [UInt8](repeating: 0, count: Frame.headerSize)
            h.withUnsafeMutableBytes {
                Frame.writeHeader(to: $0.baseAddress!, rawType: MessageType.ping.rawValue, version: Frame.version, flags: 0,
                                  requestID: 0, payloadLength: 1 << 30, payloadChecksum: 0)
            }
            _ = h.withUnsafeBytes { send(c.fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            Thread.sleep(forTimeInterval: 0.5)
        }
        let c = try WireConnection.connect(host: "127.0.0.1", port: port, limits: WireLimits(maxPayload: 1 << 20))
        let t0 = Date()
        XCTAssertThrowsError(try c.receive(timeout: 0.1)) { e in
            guard case .timeout? = e as? WireError else { return XCTFail("\(e)") }
        }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 0.35)
        XCTAssertFalse(c.isOpen, "a timed-out connection is closed")
        join()
        // Fresh server for the oversize case.
        let (port2, join2) = try serveOnce { c in
            var h = [UInt8](repeating: 0, count: Frame.headerSize)
            h.withUnsafeMutableBytes {
                Frame.writeHeader(to: $0.baseAddress!, rawType: MessageType.ping.rawValue, version: Frame.version, flags: 0,
                                  requestID: 0, payloadLength: 1 << 30, payloadChecksum: 0)
            }
            _ = h.withUnsafeBytes { send(c.fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            Thread.sleep(forTimeInterval: 0.3)
        }
        let c3 = try WireConnection.connect(host: "127.0.0.1", port: port2, limits: WireLimits(maxPayload: 1 << 20))
        XCTAssertThrowsError(try c3.receive(timeout: 5)) { e in
            XCTAssertEqual(e as? WireError, .frameTooLarge(length: 1 << 30, limit: 1 << 20))
        }
        join2()
    }

    func testLargeExpertFrameOverLoopback() throws {
        let n = 1 << 20   // 4 MiB of floats
        let (port, join) = try serveOnce { c in
            let codec = ShardCodec()
            var groups: [ExpertGroup] = []
            do {
                let f = try c.receive(timeout: 10)
                let v = try ExpertMessage.decodeRequest(f.payload, groups: &groups)
                var buf = [Float](repeating: 0, count: v.totalRows * v.dim)
                try codec.decode(v.activations, into: &buf)
                for i in 0..<buf.count { buf[i] *= 2 }
                try c.send(.expertResult, requestID: f.header.requestID) { b in
                    try ExpertMessage.encodeResult(into: b, layer: v.layer, dim: v.dim, groups: groups, computeNanos: 1,
                                                   output: buf, codec: codec, options: .raw)
                }
            } catch { XCTFail("server: \(error)") }
        }
        let c = try WireConnection.connect(host: "127.0.0.1", port: port)
        var rng = SeededRNG(seed: 9)
        let act = (0..<n).map { _ in rng.normal() }
        let gate = [Float](repeating: 1, count: n / 1024)
        let codec = ShardCodec()
        try c.send(.expert, requestID: 5) { b in
            try ExpertMessage.encodeRequest(into: b, layer: 2, dim: 1024, groups: [ExpertGroup(expert: 1, rows: UInt32(n / 1024))],
                                            activations: act, gate: gate, codec: codec, options: .default)
        }
        let f = try c.receive(timeout: 10)
        XCTAssertEqual(f.header.requestID, 5)
        var groups: [ExpertGroup] = []
        let v = try ExpertMessage.decodeResult(f.payload, groups: &groups)
        var out = [Float](repeating: 0, count: n)
        try codec.decode(v.output, into: &out)
        for i in stride(from: 0, to: n, by: 997) { XCTAssertEqual(out[i], 2 * act[i]) }
        join()
    }
}
