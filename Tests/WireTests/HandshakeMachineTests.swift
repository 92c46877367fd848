import Foundation
import XCTest
@testable import Wire

/// The worker's handshake as a state machine fed one frame at a time (what `HandshakeAcceptor` runs for many
/// connections on one thread).
final class HandshakeMachineTests: XCTestCase {
    func frame<M: WireMessage>(_ m: M) throws -> (FrameHeader, [UInt8]) {
        let bytes = try frameBytes(m, requestID: 0)
        return try decodeFrame(bytes)
    }

    func feed(_ hs: inout ServerHandshake, _ f: (FrameHeader, [UInt8])) throws -> ServerHandshake.Step {
        try f.1.withUnsafeBytes { p in
            try hs.receive(ReceivedFrame(header: f.0, payload: p)) { _ in
                Welcome(nonce: [], fingerprint: .none, workerName: "w", numa: .unbound, experts: [0], proof: [])
            }
        }
    }

    /// HELLO → WELCOME (proof verifies), AUTH → authenticated; AUTH first, a wrong proof, or a PING are errors.
    func testServerHandshakeStateMachine() throws {
        let secret = try WireSecret(bytes: Array("limit tests secret of 32 bytes..".utf8))
        let fp = ModelFingerprint(hashing: "m")
        let nonce = [UInt8](repeating: 9, count: 32)
        var hs = ServerHandshake(secret: secret, fingerprint: fp)
        guard case .send(let w) = try feed(&hs, try frame(Hello(nonce: nonce, fingerprint: fp, peerName: "c"))) else {
            return XCTFail("expected WELCOME")
        }
        XCTAssertEqual(w.proof, secret.serverProof(clientNonce: nonce, serverNonce: w.nonce, fingerprint: fp))
        var copy = hs
        XCTAssertThrowsError(try feed(&copy, try frame(Auth(proof: [UInt8](repeating: 0, count: 32))))) {
            guard case .authFailed? = $0 as? WireError else { return XCTFail("\($0)") }
        }
        guard case .authenticated(let hello) = try feed(&hs, try frame(Auth(proof: secret.clientProof(clientNonce: nonce, serverNonce: w.nonce)))) else {
            return XCTFail("expected authenticated")
        }
        XCTAssertEqual(hello.peerName, "c")
        var fresh = ServerHandshake(secret: secret, fingerprint: fp)
        XCTAssertThrowsError(try feed(&fresh, try frame(Auth(proof: nonce)))) {
            XCTAssertEqual($0 as? WireError, .unexpectedMessage(got: "AUTH", expected: "HELLO"))
        }
        XCTAssertThrowsError(try feed(&fresh, try frame(Ping(data: [1])))) {
            XCTAssertEqual($0 as? WireError, .unexpectedMessage(got: "PING", expected: "HELLO"))
        }
        XCTAssertThrowsError(try feed(&fresh, try frame(Hello(nonce: nonce, fingerprint: ModelFingerprint(hashing: "x"), peerName: "c")))) {
            guard case .fingerprintMismatch? = $0 as? WireError else { return XCTFail("\($0)") }
        }
    }
}
