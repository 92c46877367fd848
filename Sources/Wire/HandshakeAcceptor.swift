// Accepting connections and running the server side of the handshake for all of them on one thread (poll), so
// that a connection costs no thread, and only a small buffer, until its peer has proved the secret
// (docs/protocol.md §6–7).
//
// Invariants: every pending connection has a deadline `handshakeTimeout` seconds after its accept, and is closed
// (after ERROR timeout) when it passes; pending connections plus `active` (those handed over) never exceed
// `maxConnections` — a connection accepted beyond that gets ERROR tooManyConnections and is closed at once.
// Frames before READY are at most `Handshake.maxPayload` bytes, so a pending connection holds at most that much.

import Foundation

public final class HandshakeAcceptor {
    public struct Options {
        public var secret: WireSecret
        public var fingerprint: ModelFingerprint
        /// Limits of the connection once it is authenticated.
        public var limits: WireLimits
        /// Seconds from accept to READY sent.
        public var handshakeTimeout: Double
        /// Open connections (pending here plus handed over and not yet closed) at most.
        public var maxConnections: Int
        /// Name used in refusal texts.
        public var name: String
        public init(secret: WireSecret, fingerprint: ModelFingerprint, limits: WireLimits = .default,
                    handshakeTimeout: Double = 10, maxConnections: Int = 256, name: String = "worker") {
            self.secret = secret; self.fingerprint = fingerprint; self.limits = limits
            self.handshakeTimeout = handshakeTimeout; self.maxConnections = maxConnections; self.name = name
        }
    }

    /// Initial size of a pending connection's two frame buffers (a HELLO or AUTH is under 200 bytes).
    static let pendingBufferBytes = 1024
    /// Connections accepted per `step` at most, so that a flood cannot starve the handshakes in progress.
    static let acceptsPerStep = 256

    final class Pending {
        let conn: WireConnection
        let deadline: UInt64
        var machine: ServerHandshake
        /// Bytes of the frame being received so far (header, then payload) in `conn.recvBuffer`.
        var received = 0
        var header: FrameHeader?
        /// Bytes of `conn.sendBuffer` still to send, and what happens once they are sent.
        var sendOffset = 0
        var afterSend: AfterSend = .receive
        enum AfterSend { case receive, handOver(Hello), close }

        init(conn: WireConnection, deadline: UInt64, machine: ServerHandshake) {
            self.conn = conn; self.deadline = deadline; self.machine = machine
        }
        var sending: Bool { sendOffset < conn.sendBuffer.count }
    }

    public let listener: WireListener
    public var options: Options
    private var pending: [Pending] = []
    private var pollSet: [pollfd] = []
    /// Connections refused for the limit since the start.
    public private(set) var refused = 0
    /// Handshakes that timed out or failed since the start.
    public private(set) var failedHandshakes = 0

    public init(listener: WireListener, options: Options) {
        self.listener = listener
        self.options = options
        let flags = fcntl(listener.fd, F_GETFL, 0)
        _ = fcntl(listener.fd, F_SETFL, flags | O_NONBLOCK)
        pending.reserveCapacity(64)
    }

    public var pendingCount: Int { pending.count }

    /// Waits up to `timeout` seconds for activity, then accepts (when `accept`), advances every handshake that has
    /// data, expires the overdue ones, and hands each newly authenticated connection to `ready` (its READY sent;
    /// `active` must count it from then on). `active` is the number of handed-over connections still open.
    /// Returns the error of a failing accept (e.g. EMFILE): the caller pauses accepting (`accept: false`) for a
    /// while; pending handshakes go on regardless.
    @discardableResult
    public func step(timeout: Double, accept: Bool, active: Int, welcome: (Hello) -> Welcome,
                     ready: (WireConnection, Hello) -> Void) -> Error? {
        pollSet.removeAll(keepingCapacity: true)
        for p in pending {
            pollSet.append(pollfd(fd: p.conn.fd, events: Int16(p.sending ? POLLOUT : POLLIN), revents: 0))
        }
        if accept { pollSet.append(pollfd(fd: listener.fd, events: Int16(POLLIN), revents: 0)) }
        var ms = Int32(max(0, timeout * 1000))
        let now = monotonicNanos()
        var soonest = UInt64.max
        for p in pending where p.deadline < soonest { soonest = p.deadline }
        if soonest != .max {
            ms = soonest <= now ? 0 : min(ms, Int32(min((soonest - now) / 1_000_000 + 1, UInt64(Int32.max))))
        }
        let rc = pollSet.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), ms) }
        var acceptError: Error?
        if rc > 0 {
            for (i, p) in pending.enumerated() where pollSet[i].revents != 0 { advance(p, welcome: welcome) }
            if accept, pollSet[pollSet.count - 1].revents != 0 {
                acceptError = acceptNew(active: active)
            }
        }
        let t = monotonicNanos()
        var i = 0
        while i < pending.count {
            let p = pending[i]
            if case .handOver(let hello) = p.afterSend, !p.sending {
                pending.remove(at: i)
                p.conn.recvBuffer.count = 0
                p.conn.limits = options.limits
                ready(p.conn, hello)
                continue
            }
            if !p.conn.isOpen {
                pending.remove(at: i)
                continue
            }
            if t >= p.deadline {
                failedHandshakes += 1
                refuse(p.conn, .timeout, "no authenticated handshake within \(options.handshakeTimeout) s")
                pending.remove(at: i)
                continue
            }
            i += 1
        }
        return acceptError
    }

    /// Sends ERROR `code` to every pending connection and closes it (the worker is stopping).
    public func closeAll(_ code: WireErrorCode, _ text: String) {
        for p in pending { refuse(p.conn, code, text) }
        pending.removeAll()
    }

    /// ERROR then close, without waiting: a fresh socket's send buffer takes a small frame whole, and a peer that
    /// does not read is not waited for.
    private func refuse(_ conn: WireConnection, _ code: WireErrorCode, _ text: String) {
        if conn.isOpen {
            do {
                try Frame.encode(into: conn.sendBuffer, type: .error, requestID: 0) { b in
                    try ErrorMessage(code: code, text: text).encode(into: b)
                }
                _ = Glibc.send(conn.fd, conn.sendBuffer.base, conn.sendBuffer.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            } catch {}
        }
        conn.close()
    }

    private func acceptNew(active: Int) -> Error? {
        for _ in 0..<Self.acceptsPerStep {
            var ss = sockaddr_storage()
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutablePointer(to: &ss) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.accept(listener.fd, $0, &len) }
            }
            if fd < 0 {
                let e = errno
                if e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == ECONNABORTED { return nil }
                return WireError.io("accept", errno: e)
            }
            let handshakeLimits = WireLimits(maxPayload: min(options.limits.maxPayload, Handshake.maxPayload),
                                             acceptUnchecksummed: options.limits.acceptUnchecksummed)
            let conn = WireConnection(socket: fd, peer: SocketAddress.describe(ss), limits: handshakeLimits,
                                      bufferCapacity: Self.pendingBufferBytes)
            if pending.count + active >= options.maxConnections {
                refused += 1
                refuse(conn, .tooManyConnections,
                       "\(options.name) has \(pending.count + active) open connections, its limit is \(options.maxConnections)")
                continue
            }
            let deadline = monotonicNanos() &+ UInt64(max(0, min(options.handshakeTimeout, 1e6)) * 1e9)
            pending.append(Pending(conn: conn, deadline: deadline,
                                   machine: ServerHandshake(secret: options.secret, fingerprint: options.fingerprint)))
        }
        return nil
    }

    /// Reads what is there (never blocks), feeds complete frames to the handshake, sends its answers.
    private func advance(_ p: Pending, welcome: (Hello) -> Welcome) {
        do {
            if p.sending {
                try flush(p)
                return
            }
            while p.conn.isOpen && !p.sending {
                guard let frame = try readFrame(p) else { return }
                switch try p.machine.receive(frame, welcome: welcome) {
                case .send(let w):
                    try Frame.encode(into: p.conn.sendBuffer, type: Welcome.messageType, requestID: 0) { try w.encode(into: $0) }
                    p.afterSend = .receive
                case .authenticated(let hello):
                    try Frame.encode(into: p.conn.sendBuffer, type: Ready.messageType, requestID: 0) { try Ready().encode(into: $0) }
                    p.afterSend = .handOver(hello)
                }
                p.sendOffset = 0
                try flush(p)
                if case .handOver = p.afterSend { return }
            }
        } catch let e as WireError {
            failedHandshakes += 1
            switch e {
            case .peer, .closed, .truncated, .io: p.conn.close()
            default: refuse(p.conn, e.code, e.description)
            }
        } catch {
            failedHandshakes += 1
            refuse(p.conn, .internalError, "\(error)")
        }
    }

    private func flush(_ p: Pending) throws {
        let b = p.conn.sendBuffer
        while p.sendOffset < b.count {
            let r = Glibc.send(p.conn.fd, b.base + p.sendOffset, b.count - p.sendOffset, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            if r > 0 { p.sendOffset += r; p.conn.bytesSent &+= UInt64(r); continue }
            let e = errno
            if r < 0 && (e == EAGAIN || e == EWOULDBLOCK) { return }
            if r < 0 && e == EINTR { continue }
            throw WireError.closed
        }
    }

    /// Reads available bytes of the current frame; returns it once complete and verified, nil while incomplete.
    private func readFrame(_ p: Pending) throws -> ReceivedFrame? {
        let buf = p.conn.recvBuffer
        while true {
            let want = p.header.map { Frame.headerSize + $0.payloadLength } ?? Frame.headerSize
            if p.received == want {
                if let h = p.header {
                    let payload = UnsafeRawBufferPointer(start: buf.base + Frame.headerSize, count: h.payloadLength)
                    try Frame.verifyPayload(h, payload)
                    p.header = nil
                    p.received = 0
                    return ReceivedFrame(header: h, payload: payload)
                }
                let h = try Frame.parseHeader(UnsafeRawBufferPointer(start: buf.base, count: Frame.headerSize),
                                              limits: p.conn.limits)
                buf.count = Frame.headerSize
                buf.ensureCapacity(Frame.headerSize + h.payloadLength)
                p.header = h
                continue
            }
            buf.ensureCapacity(want)
            let r = recv(p.conn.fd, buf.base + p.received, want - p.received, Int32(MSG_DONTWAIT))
            if r > 0 { p.received += r; p.conn.bytesReceived &+= UInt64(r); continue }
            if r == 0 {
                if p.received == 0 && p.header == nil { throw WireError.closed }
                throw WireError.truncated(expected: want, got: p.received)
            }
            let e = errno
            if e == EAGAIN || e == EWOULDBLOCK { return nil }
            if e == EINTR { continue }
            throw WireError.io("receive from \(p.conn.peer)", errno: e)
        }
    }
}
