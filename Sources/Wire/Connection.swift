// A small blocking POSIX TCP connection that sends and receives whole frames (docs/protocol.md §1, §6).
//
// Every send and receive has a deadline (poll); after a timeout, a truncated frame or any I/O error the
// connection is closed, since the stream position is no longer known. Buffers belong to the connection and are
// reused for every frame. A connection is used by one thread at a time.

import Foundation

public struct ReceivedFrame {
    public var header: FrameHeader
    /// Valid until the next `receive` on the same connection.
    public var payload: UnsafeRawBufferPointer

    public var reader: WireReader { WireReader(payload) }

    /// Decodes the payload as `M`; an ERROR frame becomes `WireError.peer`, another type `unexpectedMessage`.
    public func decode<M: WireMessage>(_: M.Type) throws -> M {
        if M.messageType != .error { try throwIfError() }
        guard header.type == M.messageType else {
            throw WireError.unexpectedMessage(got: "\(header.type)", expected: "\(M.messageType)")
        }
        var r = reader
        return try M(from: &r)
    }

    /// Throws `WireError.peer` if this frame is an ERROR.
    public func throwIfError() throws {
        if header.type == .error {
            var r = reader
            let e = try ErrorMessage(from: &r)
            throw WireError.peer(code: e.code, text: e.text)
        }
    }
}

public final class WireConnection {
    public private(set) var fd: Int32
    /// "host:port" of the other side, for error messages.
    public let peer: String
    public var limits: WireLimits
    /// The outgoing frame; `send(_:requestID:timeout:_:)` rebuilds it for every message.
    public private(set) var sendBuffer: WireBuffer
    private(set) var recvBuffer: WireBuffer
    /// Compute payload checksums on send (flag bit 0 when off; the peer must accept that, see WireLimits).
    public var payloadChecksums = true
    var headerScratch = [UInt8](repeating: 0, count: Frame.headerSize)
    public internal(set) var bytesSent: UInt64 = 0
    public internal(set) var bytesReceived: UInt64 = 0

    /// `bufferCapacity`: initial bytes of each of the two frame buffers (they grow to the largest frame seen).
    public init(socket fd: Int32, peer: String, limits: WireLimits = .default, bufferCapacity: Int = 64 << 10) {
        self.fd = fd; self.peer = peer; self.limits = limits
        sendBuffer = WireBuffer(capacity: bufferCapacity)
        recvBuffer = WireBuffer(capacity: bufferCapacity)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }
    deinit { close() }

    /// Puts `send` and `receive` in place of the two frame buffers and returns the previous ones. Only between
    /// frames, when neither holds anything (a frame is read exactly, never beyond its end): a server uses it to
    /// keep grown buffers for its next connection instead of mapping new ones for each.
    public func swapBuffers(send: WireBuffer, receive: WireBuffer) -> (send: WireBuffer, receive: WireBuffer) {
        let old = (sendBuffer, recvBuffer)
        sendBuffer = send; recvBuffer = receive
        send.reset(); receive.reset()
        return old
    }

    public var isOpen: Bool { fd >= 0 }

    public func close() {
        if fd >= 0 { _ = Glibc.close(fd); fd = -1 }
    }

    /// Connects to `host:port` within `timeout` seconds.
    public static func connect(host: String, port: Int, timeout: Double = 10, limits: WireLimits = .default) throws
        -> WireConnection {
        let peer = "\(host):\(port)"
        let addresses = try SocketAddress.resolve(host: host, port: port, passive: false)
        var lastError: Error = WireError.io("connect to \(peer): no address", errno: 0)
        for a in addresses {
            let fd = socket(a.family, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { lastError = WireError.io("socket for \(peer)", errno: errno); continue }
            let flags = fcntl(fd, F_GETFL, 0)
            _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
            var rc = a.withSockaddr { Glibc.connect(fd, $0, $1) }
            if rc != 0 && errno == EINPROGRESS {
                var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                rc = poll(&pfd, 1, Int32(max(1, timeout * 1000)))
                if rc == 0 {
                    _ = Glibc.close(fd)
                    lastError = WireError.timeout("connect to \(peer) after \(timeout) s"); continue
                }
                var err: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
                rc = err == 0 ? 0 : -1
                if err != 0 { errno = err }
            }
            if rc != 0 {
                lastError = WireError.io("connect to \(peer)", errno: errno)
                _ = Glibc.close(fd); continue
            }
            _ = fcntl(fd, F_SETFL, flags)
            return WireConnection(socket: fd, peer: peer, limits: limits)
        }
        throw lastError
    }

    // MARK: sending

    /// Builds a frame of `type` whose payload `body` appends to the buffer, and sends it.
    public func send(_ type: MessageType, requestID: UInt64 = 0, timeout: Double = 30,
                     _ body: (WireBuffer) throws -> Void) throws {
        try Frame.encode(into: sendBuffer, type: type, requestID: requestID, checksum: payloadChecksums, body)
        try sendBuffered(timeout: timeout)
    }

    /// Sends a frame whose payload is in the caller's memory, without copying it (one sendmsg of header and
    /// payload, then the rest as the socket accepts it).
    public func send(_ type: MessageType, requestID: UInt64 = 0, payload: UnsafeRawBufferPointer,
                     timeout: Double = 30) throws {
        guard payload.count <= Int(UInt32.max) else {
            throw WireError.frameTooLarge(length: payload.count, limit: Int(UInt32.max))
        }
        guard fd >= 0 else { throw WireError.closed }
        let dl = deadline(timeout)
        try headerScratch.withUnsafeMutableBytes { h in
            Frame.writeHeader(to: h.baseAddress!, type: type, requestID: requestID, payload: payload,
                              checksum: payloadChecksums)
            var iov = [iovec(iov_base: h.baseAddress!, iov_len: Frame.headerSize),
                       iovec(iov_base: UnsafeMutableRawPointer(mutating: payload.baseAddress), iov_len: payload.count)]
            var sent = 0
            while true {
                let r = iov.withUnsafeMutableBufferPointer { v -> Int in
                    var msg = msghdr()
                    msg.msg_iov = v.baseAddress
                    msg.msg_iovlen = payload.count > 0 ? 2 : 1
                    return sendmsg(fd, &msg, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
                }
                if r >= 0 { sent = r; break }
                let e = errno
                if e == EAGAIN || e == EWOULDBLOCK { try wait(Int32(POLLOUT), deadline: dl, what: "sending to"); continue }
                if e == EINTR { continue }
                close()
                throw e == EPIPE || e == ECONNRESET ? WireError.closed : WireError.io("send to \(peer)", errno: e)
            }
            if sent < Frame.headerSize {
                try writeAll(UnsafeRawPointer(h.baseAddress! + sent), Frame.headerSize - sent, deadline: dl)
                sent = Frame.headerSize
            }
            let done = sent - Frame.headerSize
            if done < payload.count { try writeAll(payload.baseAddress! + done, payload.count - done, deadline: dl) }
        }
        bytesSent &+= UInt64(Frame.headerSize + payload.count)
    }

    public func send<M: WireMessage>(_ message: M, requestID: UInt64 = 0, timeout: Double = 30) throws {
        try send(M.messageType, requestID: requestID, timeout: timeout) { try message.encode(into: $0) }
    }

    /// Sends the frame already in `sendBuffer`.
    public func sendBuffered(timeout: Double) throws {
        try writeAll(UnsafeRawPointer(sendBuffer.base), sendBuffer.count, deadline: deadline(timeout))
        bytesSent &+= UInt64(sendBuffer.count)
    }

    /// Sends ERROR and closes; failures while doing so are ignored (the peer may be gone).
    public func fail(_ code: WireErrorCode, _ text: String, requestID: UInt64 = 0) {
        if isOpen { try? send(ErrorMessage(code: code, text: text), requestID: requestID, timeout: 1) }
        close()
    }

    // MARK: receiving

    /// Set when a received frame failed validation: the stream position is lost, so further receives fail; the
    /// connection stays open only so that the caller can answer with `fail(_:_:)` (ERROR, then close).
    public private(set) var poisoned = false

    /// Receives one complete, verified frame. The payload view is valid until the next `receive`.
    /// I/O errors and timeouts close the connection; validation errors poison it (see `poisoned`).
    public func receive(timeout: Double) throws -> ReceivedFrame {
        guard !poisoned else { throw WireError.closed }
        let dl = deadline(timeout)
        recvBuffer.ensureCapacity(Frame.headerSize)
        try readExactly(recvBuffer.base, Frame.headerSize, deadline: dl, frameStart: true)
        let header: FrameHeader
        do {
            header = try Frame.parseHeader(UnsafeRawBufferPointer(start: recvBuffer.base, count: Frame.headerSize),
                                           limits: limits)
        } catch { poisoned = true; throw error }
        recvBuffer.count = Frame.headerSize
        recvBuffer.ensureCapacity(Frame.headerSize + header.payloadLength)
        let base = UnsafeRawPointer(recvBuffer.base + Frame.headerSize)
        let payload = UnsafeRawBufferPointer(start: base, count: header.payloadLength)
        if header.flags & Frame.flagNoPayloadChecksum == 0 {
            // CRC each piece as it arrives (still in cache), overlapping the checksum with the sender still sending.
            var stream = CRC32CStream()
            try readExactly(recvBuffer.base + Frame.headerSize, header.payloadLength, deadline: dl, frameStart: false) {
                stream.consume(base, upTo: $0)
            }
            let got = UInt64(stream.value)
            guard got == header.payloadChecksum else {
                poisoned = true
                throw WireError.badPayloadChecksum(expected: header.payloadChecksum, got: got)
            }
        } else {
            try readExactly(recvBuffer.base + Frame.headerSize, header.payloadLength, deadline: dl, frameStart: false)
        }
        bytesReceived &+= UInt64(Frame.headerSize + header.payloadLength)
        return ReceivedFrame(header: header, payload: payload)
    }

    // MARK: I/O

    func deadline(_ timeout: Double) -> UInt64 {
        monotonicNanos() &+ UInt64(max(0, min(timeout, 1e6)) * 1e9)
    }

    func wait(_ events: Int32, deadline: UInt64, what: String) throws {
        while true {
            let now = monotonicNanos()
            guard now < deadline else {
                close()
                throw WireError.timeout("\(what) \(peer)")
            }
            var pfd = pollfd(fd: fd, events: Int16(events), revents: 0)
            let ms = Int32(min((deadline - now + 999_999) / 1_000_000, UInt64(Int32.max)))
            let rc = poll(&pfd, 1, ms)
            if rc > 0 { return }
            if rc < 0 && errno != EINTR { let e = errno; close(); throw WireError.io("poll \(peer)", errno: e) }
        }
    }

    func writeAll(_ p: UnsafeRawPointer, _ n: Int, deadline: UInt64) throws {
        guard fd >= 0 else { throw WireError.closed }
        var off = 0
        while off < n {
            let r = Glibc.send(fd, p + off, n - off, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            if r > 0 { off += r; continue }
            let e = errno
            if r < 0 && (e == EAGAIN || e == EWOULDBLOCK) { try wait(Int32(POLLOUT), deadline: deadline, what: "sending to"); continue }
            if r < 0 && e == EINTR { continue }
            close()
            throw e == EPIPE || e == ECONNRESET ? WireError.closed : WireError.io("send to \(peer)", errno: e)
        }
    }

    func readExactly(_ p: UnsafeMutableRawPointer, _ n: Int, deadline: UInt64, frameStart: Bool,
                     progress: ((Int) -> Void)? = nil) throws {
        guard fd >= 0 else { throw WireError.closed }
        var off = 0
        while off < n {
            let r = recv(fd, p + off, n - off, Int32(MSG_DONTWAIT))
            if r > 0 { off += r; progress?(off); continue }
            if r == 0 {
                close()
                if frameStart && off == 0 { throw WireError.closed }
                throw WireError.truncated(expected: n, got: off)
            }
            let e = errno
            if e == EAGAIN || e == EWOULDBLOCK { try wait(Int32(POLLIN), deadline: deadline, what: "receiving from"); continue }
            if e == EINTR { continue }
            close()
            throw e == ECONNRESET ? WireError.closed : WireError.io("receive from \(peer)", errno: e)
        }
    }
}

/// A listening TCP socket.
public final class WireListener {
    public private(set) var fd: Int32
    public let host: String
    /// The bound port (the kernel's choice when 0 was asked).
    public let port: Int

    public init(host: String, port: Int, backlog: Int32 = 64) throws {
        let addresses = try SocketAddress.resolve(host: host, port: port, passive: true)
        guard let a = addresses.first else { throw WireError.io("no address for \(host)", errno: 0) }
        let fd = socket(a.family, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw WireError.io("socket", errno: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard a.withSockaddr({ bind(fd, $0, $1) }) == 0 else {
            let e = errno; _ = Glibc.close(fd)
            throw WireError.io("bind \(host):\(port)", errno: e)
        }
        guard listen(fd, backlog) == 0 else {
            let e = errno; _ = Glibc.close(fd)
            throw WireError.io("listen \(host):\(port)", errno: e)
        }
        var ss = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &ss) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.fd = fd
        self.host = host
        self.port = SocketAddress.port(of: ss)
    }
    deinit { close() }

    public func close() {
        if fd >= 0 { _ = Glibc.close(fd); fd = -1 }
    }

    /// Waits up to `timeout` seconds for a connection; nil when none arrived (or the listener was closed).
    public func accept(timeout: Double, limits: WireLimits = .default) throws -> WireConnection? {
        guard fd >= 0 else { return nil }
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let rc = poll(&pfd, 1, Int32(max(0, timeout * 1000)))
        if rc <= 0 { return nil }
        var ss = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let c = withUnsafeMutablePointer(to: &ss) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.accept(fd, $0, &len) }
        }
        guard c >= 0 else {
            if errno == EAGAIN || errno == EINTR || errno == ECONNABORTED { return nil }
            throw WireError.io("accept", errno: errno)
        }
        return WireConnection(socket: c, peer: SocketAddress.describe(ss), limits: limits)
    }
}

struct SocketAddress {
    var family: Int32
    var storage: sockaddr_storage
    var length: socklen_t

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var s = storage
        return withUnsafePointer(to: &s) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) } }
    }

    static func resolve(host: String, port: Int, passive: Bool) throws -> [SocketAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = passive ? AI_PASSIVE : 0
        var res: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &res)
        guard rc == 0, let first = res else {
            throw WireError.io("cannot resolve '\(host)': \(String(cString: gai_strerror(rc)))", errno: 0)
        }
        defer { freeaddrinfo(first) }
        var out: [SocketAddress] = []
        var p: UnsafeMutablePointer<addrinfo>? = first
        while let a = p {
            var ss = sockaddr_storage()
            withUnsafeMutableBytes(of: &ss) { $0.copyMemory(from: UnsafeRawBufferPointer(start: a.pointee.ai_addr, count: Int(a.pointee.ai_addrlen))) }
            out.append(SocketAddress(family: a.pointee.ai_family, storage: ss, length: a.pointee.ai_addrlen))
            p = a.pointee.ai_next
        }
        return out
    }

    static func port(of ss: sockaddr_storage) -> Int {
        var s = ss
        return withUnsafePointer(to: &s) { p -> Int in
            if Int32(ss.ss_family) == AF_INET {
                return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
            }
            return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
        }
    }

    static func describe(_ ss: sockaddr_storage) -> String {
        var s = ss
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let text: String = withUnsafePointer(to: &s) { p in
            if Int32(ss.ss_family) == AF_INET {
                return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin -> String in
                    var a = sin.pointee.sin_addr
                    inet_ntop(AF_INET, &a, &buf, socklen_t(buf.count))
                    return String(cString: buf)
                }
            }
            return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin -> String in
                var a = sin.pointee.sin6_addr
                inet_ntop(AF_INET6, &a, &buf, socklen_t(buf.count))
                return "[" + String(cString: buf) + "]"
            }
        }
        return "\(text):\(port(of: ss))"
    }
}
