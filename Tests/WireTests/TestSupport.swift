import Foundation
@testable import Wire

/// SplitMix64: a tiny seeded generator so randomised tests are reproducible.
struct SeededRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Approximately standard normal (sum of uniforms).
    mutating func normal() -> Float {
        var s: Float = 0
        for _ in 0..<4 { s += Float.random(in: -1...1, using: &self) }
        return s * 0.866
    }
}

/// Builds a complete frame for a message into a byte array.
func frameBytes<M: WireMessage>(_ m: M, requestID: UInt64 = 7) throws -> [UInt8] {
    let b = WireBuffer()
    try Frame.encode(into: b, type: M.messageType, requestID: requestID) { try m.encode(into: $0) }
    return Array(b.bytes)
}

func frameBytes(type: MessageType, requestID: UInt64 = 7, _ body: (WireBuffer) throws -> Void) throws -> [UInt8] {
    let b = WireBuffer()
    try Frame.encode(into: b, type: type, requestID: requestID, body)
    return Array(b.bytes)
}

/// A raw frame with an arbitrary (possibly invalid) header over `payload`.
func rawFrame(type: UInt8, version: UInt16 = Frame.version, flags: UInt8 = 0, magic: UInt32 = Frame.magic,
              payload: [UInt8], claimedLength: UInt32? = nil) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: Frame.headerSize)
    out.withUnsafeMutableBytes { h in
        payload.withUnsafeBytes { p in
            Frame.writeHeader(to: h.baseAddress!, rawType: type, version: version, flags: flags, requestID: 1,
                              payloadLength: claimedLength ?? UInt32(payload.count), payloadChecksum: UInt64(CRC32C.checksum(p)),
                              magic: magic)
        }
    }
    return out + payload
}

func decodeFrame(_ bytes: [UInt8], limits: WireLimits = .default) throws -> (FrameHeader, [UInt8]) {
    try bytes.withUnsafeBytes { b in
        let (h, p, _) = try Frame.decode(b, limits: limits)
        return (h, Array(p))
    }
}

func decodeMessage<M: WireMessage>(_ bytes: [UInt8], as: M.Type) throws -> M {
    try bytes.withUnsafeBytes { b in
        let (h, p, _) = try Frame.decode(b)
        return try ReceivedFrame(header: h, payload: p).decode(M.self)
    }
}

