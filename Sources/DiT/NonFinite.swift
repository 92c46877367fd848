import Tensor

/// Finds NaN and ±Inf in stored weights by their bit patterns (all exponent bits set), without converting:
/// one pass over the tensor's bytes at load time.
enum NonFinite {
    /// Nil when every value is finite; otherwise how many are not, the first one's flat index and its value as text.
    static func scan(_ data: UnsafeRawPointer, count: Int, dtype: WeightDType) -> (count: Int, first: Int, value: String)? {
        switch dtype {
        case .f32: return scan(data.assumingMemoryBound(to: UInt32.self), count: count, exponent: 0x7F80_0000)
        case .f16: return scan(data.assumingMemoryBound(to: UInt16.self), count: count, exponent: 0x7C00)
        case .bf16: return scan(data.assumingMemoryBound(to: UInt16.self), count: count, exponent: 0x7F80)
        }
    }

    private static func scan<T: FixedWidthInteger & UnsignedInteger>(_ p: UnsafePointer<T>, count: Int, exponent: T)
        -> (count: Int, first: Int, value: String)? {
        // Branch-free counting pass (vectorises); the rare failing tensor gets a second pass for the first index.
        var bad = 0
        for i in 0..<count { bad &+= (p[i] & exponent) == exponent ? 1 : 0 }
        guard bad > 0 else { return nil }
        let first = (0..<count).first { (p[$0] & exponent) == exponent }!
        let mantissa = p[first] & ~exponent & (T.max >> 1)
        let negative = p[first] >> (T.bitWidth - 1) == 1
        return (bad, first, mantissa != 0 ? "NaN" : negative ? "-Inf" : "+Inf")
    }
}
