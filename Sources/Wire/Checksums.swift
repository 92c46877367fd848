// Checksums of the wire format (docs/protocol.md §1): CRC32C for the 32-byte header and for payloads.
// The CRC itself is C (Sources/CSupport/crc32c.c): AVX-512 VPCLMULQDQ folding, else the SSE4.2 CRC32 instruction
// on three interleaved streams, else slicing-by-8 tables, whichever the CPU has; all give the same value. Reference vectors come from
// tools/wire_vectors.py (a bit-at-a-time CRC32C written from the definition).

import CSupport

/// CRC32C (Castagnoli): reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF.
public enum CRC32C {
    /// Continues a CRC: pass the previous result as `crc` (0 to start).
    @inline(__always)
    public static func checksum(_ data: UnsafeRawBufferPointer, crc: UInt32 = 0) -> UInt32 {
        guard let base = data.baseAddress, data.count > 0 else { return crc }
        return moe_crc32c(crc, base, data.count)
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// The same CRC by the portable table-driven code, whatever the CPU (the fallback of `checksum`).
    public static func portableChecksum(_ data: UnsafeRawBufferPointer, crc: UInt32 = 0) -> UInt32 {
        guard let base = data.baseAddress, data.count > 0 else { return crc }
        return moe_crc32c_sw(crc, base, data.count)
    }

    /// The same CRC by the SSE4.2 CRC32 instruction on three streams (the portable code without SSE4.2).
    public static func sse42Checksum(_ data: UnsafeRawBufferPointer, crc: UInt32 = 0) -> UInt32 {
        guard let base = data.baseAddress, data.count > 0 else { return crc }
        return moe_crc32c_sse42(crc, base, data.count)
    }

    /// The implementation `checksum` uses on this CPU.
    public static var implementation: String {
        switch moe_crc32c_hardware() {
        case 2: return "AVX-512 VPCLMULQDQ folding"
        case 1: return "SSE4.2 CRC32, 3 streams"
        default: return "slicing-by-8"
        }
    }
}

/// CRC32C over a message that arrives progressively into one contiguous buffer: `consume` folds in the bytes
/// received so far, `value` is the CRC of everything consumed. Same result as `CRC32C.checksum` of the whole.
public struct CRC32CStream {
    public private(set) var value: UInt32 = 0
    /// Bytes from the message start already folded in.
    public private(set) var consumed = 0

    public init() {}

    /// Folds `base[consumed ..< available]` into the CRC. `base` is the message start.
    @inline(__always) public mutating func consume(_ base: UnsafeRawPointer, upTo available: Int) {
        guard available > consumed else { return }
        value = moe_crc32c(value, base + consumed, available - consumed)
        consumed = available
    }
}
