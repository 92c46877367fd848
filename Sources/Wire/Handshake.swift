// Handshake and shared-secret authentication (docs/protocol.md §7–8):
//   HELLO(clientNonce) → WELCOME(serverNonce, serverProof) → AUTH(clientProof) → READY
// serverProof = HMAC-SHA256(secret, "moebench-wire/1 server" ‖ clientNonce ‖ serverNonce ‖ fingerprint)
// clientProof = HMAC-SHA256(secret, "moebench-wire/1 client" ‖ clientNonce ‖ serverNonce)

import Crypto
import Foundation

/// The cluster's shared secret (the bytes of the secret file).
public struct WireSecret {
    public static let minimumBytes = 16
    let key: SymmetricKey

    public init(bytes: [UInt8]) throws {
        guard bytes.count >= Self.minimumBytes else {
            throw WireError.authFailed("the secret has \(bytes.count) bytes; at least \(Self.minimumBytes) are required")
        }
        key = SymmetricKey(data: bytes)
    }

    /// Reads a secret file; surrounding whitespace is not part of the secret.
    public init(contentsOf path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw WireError.authFailed("cannot read secret file '\(path)'")
        }
        var bytes = [UInt8](data)
        while let last = bytes.last, last == 0x0A || last == 0x0D || last == 0x20 || last == 0x09 { bytes.removeLast() }
        do { try self.init(bytes: bytes) } catch WireError.authFailed(let why) {
            throw WireError.authFailed("secret file '\(path)': \(why)")
        }
    }

    /// 32 random bytes from the system CSPRNG.
    public static func randomBytes(_ n: Int = 32) -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        return (0..<n).map { _ in UInt8.random(in: .min ... .max, using: &g) }
    }

    func proofData(server: Bool, clientNonce: [UInt8], serverNonce: [UInt8], fingerprint: ModelFingerprint) -> [UInt8] {
        var d = Array((server ? "moebench-wire/1 server" : "moebench-wire/1 client").utf8)
        d += clientNonce
        d += serverNonce
        if server { d += fingerprint.bytes }
        return d
    }

    public func serverProof(clientNonce: [UInt8], serverNonce: [UInt8], fingerprint: ModelFingerprint) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: proofData(server: true, clientNonce: clientNonce,
                                                             serverNonce: serverNonce, fingerprint: fingerprint),
                                              using: key))
    }

    public func clientProof(clientNonce: [UInt8], serverNonce: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: proofData(server: false, clientNonce: clientNonce,
                                                             serverNonce: serverNonce, fingerprint: .none),
                                              using: key))
    }

    /// Constant-time verification.
    func verify(_ proof: [UInt8], server: Bool, clientNonce: [UInt8], serverNonce: [UInt8],
                fingerprint: ModelFingerprint) -> Bool {
        HMAC<SHA256>.isValidAuthenticationCode(proof, authenticating: proofData(server: server, clientNonce: clientNonce,
                                                                                serverNonce: serverNonce,
                                                                                fingerprint: fingerprint),
                                               using: key)
    }
}

public enum Handshake {
    /// Largest payload either side accepts before READY (docs/protocol.md §6): HELLO, WELCOME, AUTH, READY and ERROR
    /// are small, so an unauthenticated peer cannot make the other side grow its receive buffer towards the
    /// post-handshake limit. The connection's own `limits` apply again once READY is sent or received.
    public static let maxPayload = 64 << 10

    /// Runs `body` with the connection's payload limit lowered to `maxPayload`, restoring it afterwards.
    static func withHandshakeLimit<R>(_ conn: WireConnection, _ body: () throws -> R) rethrows -> R {
        let saved = conn.limits
        conn.limits.maxPayload = min(saved.maxPayload, maxPayload)
        defer { conn.limits = saved }
        return try body()
    }

    /// Coordinator side. Returns the worker's WELCOME once the worker has proved the secret and accepted ours.
    /// `fingerprint` = `.none` accepts any model. On failure the connection is closed.
    public static func client(_ conn: WireConnection, secret: WireSecret, fingerprint: ModelFingerprint,
                              peerName: String, timeout: Double = 10) throws -> Welcome {
        let nonce = WireSecret.randomBytes()
        return try withHandshakeLimit(conn) {
            try clientExchange(conn, nonce: nonce, secret: secret, fingerprint: fingerprint, peerName: peerName,
                               timeout: timeout)
        }
    }

    private static func clientExchange(_ conn: WireConnection, nonce: [UInt8], secret: WireSecret, fingerprint: ModelFingerprint,
                               peerName: String, timeout: Double) throws -> Welcome {
        do {
            try conn.send(Hello(nonce: nonce, fingerprint: fingerprint, peerName: peerName), timeout: timeout)
            let welcome = try conn.receive(timeout: timeout).decode(Welcome.self)
            guard welcome.protocolVersion == Frame.version else {
                conn.fail(.unsupportedVersion, "coordinator speaks version \(Frame.version)")
                throw WireError.unsupportedVersion(welcome.protocolVersion)
            }
            guard secret.verify(welcome.proof, server: true, clientNonce: nonce, serverNonce: welcome.nonce,
                                fingerprint: welcome.fingerprint) else {
                conn.fail(.authFailed, "worker proof did not verify")
                throw WireError.authFailed("worker \(welcome.workerName) at \(conn.peer) does not hold the shared secret")
            }
            guard fingerprint.isNone || welcome.fingerprint == fingerprint else {
                conn.fail(.fingerprintMismatch, "coordinator expects model \(fingerprint)")
                throw WireError.fingerprintMismatch("worker \(welcome.workerName) at \(conn.peer) serves model \(welcome.fingerprint), expected \(fingerprint)")
            }
            try conn.send(Auth(proof: secret.clientProof(clientNonce: nonce, serverNonce: welcome.nonce)), timeout: timeout)
            _ = try conn.receive(timeout: timeout).decode(Ready.self)
            return welcome
        } catch {
            conn.close()
            throw error
        }
    }

    /// Worker side, blocking. `welcome` builds the worker's WELCOME from the HELLO (nonce and proof are filled in
    /// here). Returns the HELLO once the client has proved the secret; on failure the client got ERROR and the
    /// connection is closed. `timeout` bounds each receive and send.
    public static func server(_ conn: WireConnection, secret: WireSecret, fingerprint: ModelFingerprint,
                              timeout: Double = 10, welcome: (Hello) -> Welcome) throws -> Hello {
        try withHandshakeLimit(conn) {
            var machine = ServerHandshake(secret: secret, fingerprint: fingerprint)
            do {
                while true {
                    switch try machine.receive(try conn.receive(timeout: timeout), welcome: welcome) {
                    case .send(let w): try conn.send(w, timeout: timeout)
                    case .authenticated(let hello):
                        try conn.send(Ready(), timeout: timeout)
                        return hello
                    }
                }
            } catch let e as WireError {
                if case .peer = e {} else if case .closed = e {} else { conn.fail(e.code, e.description) }
                conn.close()
                throw e
            }
        }
    }
}

/// The worker's side of the handshake as a state machine fed one received frame at a time, so that one thread can
/// run the handshakes of many connections (see `HandshakeAcceptor`):
///   AWAIT_HELLO --HELLO ok--> (send WELCOME) AWAIT_AUTH --AUTH ok--> (send READY) authenticated.
/// Any error thrown means: answer ERROR (unless the peer sent ERROR or left) and close.
public struct ServerHandshake {
    public enum Step {
        /// Send this WELCOME and feed the next frame.
        case send(Welcome)
        /// The client proved the secret: send READY; the connection is serving from then on.
        case authenticated(Hello)
    }

    let secret: WireSecret
    let fingerprint: ModelFingerprint
    private var hello: Hello?
    private var serverNonce: [UInt8] = []

    public init(secret: WireSecret, fingerprint: ModelFingerprint) {
        self.secret = secret; self.fingerprint = fingerprint
    }

    public mutating func receive(_ frame: ReceivedFrame, welcome: (Hello) -> Welcome) throws -> Step {
        guard let hello else {
            guard frame.header.type == .hello else {
                try frame.throwIfError()
                throw WireError.unexpectedMessage(got: "\(frame.header.type)", expected: "HELLO")
            }
            let h = try frame.decode(Hello.self)
            guard h.protocolVersion == Frame.version else { throw WireError.unsupportedVersion(h.protocolVersion) }
            guard h.fingerprint.isNone || h.fingerprint == fingerprint else {
                throw WireError.fingerprintMismatch("worker serves model \(fingerprint), coordinator expects \(h.fingerprint)")
            }
            serverNonce = WireSecret.randomBytes()
            var w = welcome(h)
            w.nonce = serverNonce
            w.fingerprint = fingerprint
            w.proof = secret.serverProof(clientNonce: h.nonce, serverNonce: serverNonce, fingerprint: fingerprint)
            self.hello = h
            return .send(w)
        }
        try frame.throwIfError()
        guard frame.header.type == .auth else {
            throw WireError.unexpectedMessage(got: "\(frame.header.type)", expected: "AUTH")
        }
        let auth = try frame.decode(Auth.self)
        guard secret.verify(auth.proof, server: false, clientNonce: hello.nonce, serverNonce: serverNonce,
                            fingerprint: .none) else {
            throw WireError.authFailed("peer \(hello.peerName) does not hold the shared secret")
        }
        return .authenticated(hello)
    }
}

extension ModelFingerprint {
    /// SHA-256 of a model identity string (e.g. `DiTWeights.fingerprint`), as carried in HELLO and WELCOME.
    public init(hashing identity: String) {
        self.init(bytes: Array(SHA256.hash(data: Array(identity.utf8))))
    }
}
