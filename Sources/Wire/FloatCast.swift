// Float32 ↔ Float16 / BFloat16 casts with round-to-nearest-even, and the byte shuffle filter
// (docs/protocol.md §4). Bit-level so that they do not depend on F16C code generation; the tests check them
// against Swift's Float16 conversion and against exhaustive decoding.

public enum FloatCast {
    /// IEEE binary16 bits of `x`, round-to-nearest-even; overflow → ±Inf, NaN → quiet NaN 0x7E00 (sign kept),
    /// subnormal results kept (F. Giesen's "float_to_half_fast3_rtne").
    @inline(__always) public static func f16Bits(_ x: Float) -> UInt16 {
        var u = x.bitPattern
        let sign = u & 0x8000_0000
        u ^= sign
        var o: UInt32
        if u >= 0x4780_0000 {                      // ≥ 65536 (or Inf/NaN): all exponent bits set
            o = u > 0x7F80_0000 ? 0x7E00 : 0x7C00
        } else if u < 0x3880_0000 {                // < 2^-14: the result is subnormal or zero
            let magic = Float(bitPattern: 0x3F00_0000)   // 0.5: aligns the 10 mantissa bits at the bottom
            o = (Float(bitPattern: u) + magic).bitPattern &- 0x3F00_0000
        } else {
            let mantOdd = (u >> 13) & 1
            u = u &+ 0xC800_0FFF                   // exponent rebias (15 − 127) << 23, plus rounding bias 0xFFF
            u = u &+ mantOdd
            o = u >> 13
        }
        return UInt16(truncatingIfNeeded: o | (sign >> 16))
    }

    /// Exact value of IEEE binary16 bits.
    @inline(__always) public static func f32(f16 h: UInt16) -> Float {
        let shiftedExp: UInt32 = 0x7C00 << 13
        var o = (UInt32(h) & 0x7FFF) << 13
        let exp = shiftedExp & o
        o = o &+ ((127 - 15) << 23)
        if exp == shiftedExp {
            o = o &+ ((128 - 16) << 23)            // Inf/NaN
        } else if exp == 0 {
            o = o &+ (1 << 23)                     // zero/subnormal: renormalise
            o = (Float(bitPattern: o) - Float(bitPattern: 113 << 23)).bitPattern
        }
        return Float(bitPattern: o | ((UInt32(h) & 0x8000) << 16))
    }

    /// bfloat16 bits of `x` (top half of binary32), round-to-nearest-even; NaN stays a quiet NaN.
    @inline(__always) public static func bf16Bits(_ x: Float) -> UInt16 {
        let u = x.bitPattern
        if u & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16(truncatingIfNeeded: (u >> 16) | 0x0040) }
        return UInt16(truncatingIfNeeded: (u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
    }

    @inline(__always) public static func f32(bf16 h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

    public static func toF16(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<UInt16>, count n: Int) {
        for i in 0..<n { dst[i] = f16Bits(src[i]) }
    }
    public static func fromF16(_ src: UnsafePointer<UInt16>, _ dst: UnsafeMutablePointer<Float>, count n: Int) {
        for i in 0..<n { dst[i] = f32(f16: src[i]) }
    }
    public static func toBF16(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<UInt16>, count n: Int) {
        for i in 0..<n { dst[i] = bf16Bits(src[i]) }
    }
    public static func fromBF16(_ src: UnsafePointer<UInt16>, _ dst: UnsafeMutablePointer<Float>, count n: Int) {
        for i in 0..<n { dst[i] = f32(bf16: src[i]) }
    }
    /// `toBF16` then `ByteShuffle.shuffle` (element size 2) in one pass: the low byte of value i goes to `dst[i]`,
    /// the high byte to `dst[n + i]` (2n bytes).
    public static func toBF16Shuffled(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<UInt8>, count n: Int) {
        for i in 0..<n {
            let h = bf16Bits(src[i])
            dst[i] = UInt8(truncatingIfNeeded: h)
            dst[n + i] = UInt8(truncatingIfNeeded: h >> 8)
        }
    }
    /// `ByteShuffle.unshuffle` (element size 2) then `fromBF16` in one pass over the 2n shuffled bytes.
    public static func fromBF16Shuffled(_ src: UnsafePointer<UInt8>, _ dst: UnsafeMutablePointer<Float>, count n: Int) {
        for i in 0..<n { dst[i] = Float(bitPattern: UInt32(src[i]) << 16 | UInt32(src[n + i]) << 24) }
    }
}

/// Byte transpose of `count` elements of `elementSize` bytes: byte b of element i moves to `b·count + i`.
public enum ByteShuffle {
    public static func shuffle(_ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer, count n: Int, elementSize s: Int) {
        let d = dst.assumingMemoryBound(to: UInt8.self)
        switch s {
        case 4:
            for i in 0..<n {
                let w = UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
                d[i] = UInt8(truncatingIfNeeded: w)
                d[n + i] = UInt8(truncatingIfNeeded: w >> 8)
                d[2 * n + i] = UInt8(truncatingIfNeeded: w >> 16)
                d[3 * n + i] = UInt8(truncatingIfNeeded: w >> 24)
            }
        case 2:
            for i in 0..<n {
                let w = UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                d[i] = UInt8(truncatingIfNeeded: w)
                d[n + i] = UInt8(truncatingIfNeeded: w >> 8)
            }
        default:
            let sp = src.assumingMemoryBound(to: UInt8.self)
            for i in 0..<n { for b in 0..<s { d[b * n + i] = sp[i * s + b] } }
        }
    }

    public static func unshuffle(_ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer, count n: Int, elementSize s: Int) {
        let sp = src.assumingMemoryBound(to: UInt8.self)
        switch s {
        case 4:
            for i in 0..<n {
                let w = UInt32(sp[i]) | UInt32(sp[n + i]) << 8 | UInt32(sp[2 * n + i]) << 16 | UInt32(sp[3 * n + i]) << 24
                dst.storeBytes(of: w.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
            }
        case 2:
            for i in 0..<n {
                let w = UInt16(sp[i]) | UInt16(sp[n + i]) << 8
                dst.storeBytes(of: w.littleEndian, toByteOffset: 2 * i, as: UInt16.self)
            }
        default:
            let d = dst.assumingMemoryBound(to: UInt8.self)
            for i in 0..<n { for b in 0..<s { d[i * s + b] = sp[b * n + i] } }
        }
    }
}
