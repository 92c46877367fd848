// The frame: a fixed 32-byte little-endian header and a payload (docs/protocol.md §1).
//
// Header layout (byte offsets): 0 magic u32 | 4 version u16 | 6 type u8 | 7 flags u8 | 8 request id u64 |
// 16 payload length u32 | 20 header CRC32C u32 (computed with this field zero) | 24 payload CRC32C u64
// (zero-extended; a value with any of the upper 32 bits set never matches and is `badPayloadChecksum`).

public enum MessageType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case hello = 1, welcome, auth, ready, expert, expertResult, error, ping, pong, stats, statsReply, shutdown

    public var description: String {
        switch self {
        case .hello: return "HELLO"
        case .welcome: return "WELCOME"
        case .auth: return "AUTH"
        case .ready: return "READY"
        case .expert: return "EXPERT"
        case .expertResult: return "EXPERT_RESULT"
        case .error: return "ERROR"
        case .ping: return "PING"
        case .pong: return "PONG"
        case .stats: return "STATS"
        case .statsReply: return "STATS_REPLY"
        case .shutdown: return "SHUTDOWN"
        }
    }
}

/// Receiver limits (docs/protocol.md §6).
public struct WireLimits: Sendable {
    /// Largest payload accepted, checked on the header before any allocation.
    public var maxPayload: Int
    public static let maxString = 4096
    public static let maxList = 1 << 20
    /// Largest decoded size of one message's values (Σrows × dim × 4 bytes of F32), checked on the declared counts
    /// before any buffer is sized or any shard decompressed: LZ4 expands up to 255×, so a small frame could
    /// otherwise declare gigabytes.
    public var maxDecodedBytes: Int
    /// Accept frames whose sender omitted the payload checksum (flag bit 0); off by default.
    public var acceptUnchecksummed: Bool
    public static let defaultMaxDecodedBytes = 64 << 20
    public static let `default` = WireLimits(maxPayload: 256 << 20)
    public init(maxPayload: Int, maxDecodedBytes: Int = WireLimits.defaultMaxDecodedBytes, acceptUnchecksummed: Bool = false) {
        self.maxPayload = maxPayload; self.maxDecodedBytes = maxDecodedBytes; self.acceptUnchecksummed = acceptUnchecksummed
    }
}

public struct FrameHeader: Equatable, Sendable {
    public var type: MessageType
    public var flags: UInt8
    public var requestID: UInt64
    public var payloadLength: Int
    public var payloadChecksum: UInt64
}

public enum Frame {
    public static let magic: UInt32 = 0x5745_4F4D   // bytes "MOEW"
    public static let version: UInt16 = 2
    public static let headerSize = 32
    /// Flag bit 0: the payload checksum was not computed (field is 0). Only for links the user trusts, and only
    /// accepted by receivers configured with `WireLimits.acceptUnchecksummed`.
    public static let flagNoPayloadChecksum: UInt8 = 0x01

    /// Writes the header for `payload` at `dst` (32 bytes).
    public static func writeHeader(to dst: UnsafeMutableRawPointer, type: MessageType, requestID: UInt64,
                                   payload: UnsafeRawBufferPointer, checksum: Bool = true) {
        writeHeader(to: dst, rawType: type.rawValue, version: version, flags: checksum ? 0 : flagNoPayloadChecksum,
                    requestID: requestID, payloadLength: UInt32(payload.count),
                    payloadChecksum: checksum ? UInt64(CRC32C.checksum(payload)) : 0)
    }

    /// Writes any header, including invalid ones (tests build bad frames with it).
    public static func writeHeader(to dst: UnsafeMutableRawPointer, rawType: UInt8, version: UInt16, flags: UInt8,
                                   requestID: UInt64, payloadLength: UInt32, payloadChecksum: UInt64,
                                   magic: UInt32 = Frame.magic) {
        dst.storeBytes(of: magic.littleEndian, as: UInt32.self)
        (dst + 4).storeBytes(of: version.littleEndian, as: UInt16.self)
        (dst + 6).storeBytes(of: rawType, as: UInt8.self)
        (dst + 7).storeBytes(of: flags, as: UInt8.self)
        (dst + 8).storeBytes(of: requestID.littleEndian, as: UInt64.self)
        (dst + 16).storeBytes(of: payloadLength.littleEndian, as: UInt32.self)
        (dst + 20).storeBytes(of: UInt32(0), as: UInt32.self)
        (dst + 24).storeBytes(of: payloadChecksum.littleEndian, as: UInt64.self)
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: dst, count: headerSize))
        (dst + 20).storeBytes(of: crc.littleEndian, as: UInt32.self)
    }

    /// Validates a 32-byte header in the order of docs/protocol.md §1 (length checked before any allocation).
    public static func parseHeader(_ h: UnsafeRawBufferPointer, limits: WireLimits) throws -> FrameHeader {
        guard h.count >= headerSize, let p = h.baseAddress else {
            throw WireError.truncated(expected: headerSize, got: h.count)
        }
        let m = UInt32(littleEndian: p.loadUnaligned(as: UInt32.self))
        guard m == magic else { throw WireError.badMagic(m) }
        let stored = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 20, as: UInt32.self))
        var crc = CRC32C.checksum(UnsafeRawBufferPointer(start: p, count: 20))
        let zero: UInt32 = 0
        crc = withUnsafeBytes(of: zero) { CRC32C.checksum($0, crc: crc) }
        crc = CRC32C.checksum(UnsafeRawBufferPointer(start: p + 24, count: 8), crc: crc)
        guard crc == stored else { throw WireError.badHeaderChecksum(expected: stored, got: crc) }
        let v = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
        guard v == version else { throw WireError.unsupportedVersion(v) }
        let flags = p.load(fromByteOffset: 7, as: UInt8.self)
        guard flags & ~flagNoPayloadChecksum == 0,
              flags & flagNoPayloadChecksum == 0 || limits.acceptUnchecksummed else { throw WireError.badFlags(flags) }
        let rawType = p.load(fromByteOffset: 6, as: UInt8.self)
        guard let type = MessageType(rawValue: rawType) else { throw WireError.unknownType(rawType) }
        let length = Int(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt32.self)))
        guard length <= limits.maxPayload else { throw WireError.frameTooLarge(length: length, limit: limits.maxPayload) }
        return FrameHeader(type: type, flags: flags,
                           requestID: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
                           payloadLength: length,
                           payloadChecksum: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 24, as: UInt64.self)))
    }

    public static func verifyPayload(_ header: FrameHeader, _ payload: UnsafeRawBufferPointer) throws {
        if header.flags & flagNoPayloadChecksum != 0 { return }
        let got = UInt64(CRC32C.checksum(payload))
        guard got == header.payloadChecksum else {
            throw WireError.badPayloadChecksum(expected: header.payloadChecksum, got: got)
        }
    }

    /// Decodes one frame from the start of `bytes`. Returns the header, the payload (a view into `bytes`) and the
    /// bytes consumed. Never traps: every malformed input is a `WireError`.
    public static func decode(_ bytes: UnsafeRawBufferPointer, limits: WireLimits = .default) throws
        -> (header: FrameHeader, payload: UnsafeRawBufferPointer, consumed: Int) {
        let header = try parseHeader(bytes, limits: limits)
        let total = headerSize + header.payloadLength
        guard bytes.count >= total else { throw WireError.truncated(expected: total, got: bytes.count) }
        let payload = UnsafeRawBufferPointer(start: bytes.baseAddress! + headerSize, count: header.payloadLength)
        try verifyPayload(header, payload)
        return (header, payload, total)
    }

    /// Builds a complete frame (header + payload) into `buffer`, replacing its content.
    public static func encode(into buffer: WireBuffer, type: MessageType, requestID: UInt64, checksum: Bool = true,
                              _ body: (WireBuffer) throws -> Void) throws {
        buffer.reset()
        buffer.reserve(headerSize)
        buffer.count = headerSize
        try body(buffer)
        guard buffer.count - headerSize <= Int(UInt32.max) else {
            throw WireError.frameTooLarge(length: buffer.count - headerSize, limit: Int(UInt32.max))
        }
        let payload = UnsafeRawBufferPointer(start: buffer.base + headerSize, count: buffer.count - headerSize)
        writeHeader(to: buffer.base, type: type, requestID: requestID, payload: payload, checksum: checksum)
    }
}
