/// Element type of stored weights. Compute is always Float32; F16/BF16 weights stay in that form in memory and are
/// widened per GEMM into a caller-owned scratch buffer (so large models fit in RAM).
public enum WeightDType: String, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16"
    public var byteSize: Int { self == .f32 ? 4 : 2 }
}

/// A read-only `[rows, cols]` row-major weight matrix (PyTorch `[out, in]`), backed by memory it does not own
/// (a memory-mapped checkpoint or a buffer kept alive by the owner of the model's weights).
public struct WeightMatrix: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    public let dtype: WeightDType
    public let base: UnsafeRawPointer

    public init(rows: Int, cols: Int, dtype: WeightDType, base: UnsafeRawPointer) {
        self.rows = rows; self.cols = cols; self.dtype = dtype; self.base = base
    }

    public var count: Int { rows * cols }

    /// Rows `range` as a matrix of their own (no copy).
    public func rows(_ range: Range<Int>) -> WeightMatrix {
        WeightMatrix(rows: range.count, cols: cols, dtype: dtype, base: base + range.lowerBound * cols * dtype.byteSize)
    }

    /// The weights as Float32: the stored pointer itself for F32, else widened into `scratch` (≥ `count` floats).
    @inlinable
    public func float32(scratch: UnsafeMutablePointer<Float>?) -> UnsafePointer<Float> {
        switch dtype {
        case .f32:
            return base.assumingMemoryBound(to: Float.self)
        case .f16:
            guard let scratch else { preconditionFailure("WeightMatrix: F16 weights need a scratch buffer") }
            widenF16(base.assumingMemoryBound(to: UInt16.self), into: scratch, count: count)
            return UnsafePointer(scratch)
        case .bf16:
            guard let scratch else { preconditionFailure("WeightMatrix: BF16 weights need a scratch buffer") }
            widenBF16(base.assumingMemoryBound(to: UInt16.self), into: scratch, count: count)
            return UnsafePointer(scratch)
        }
    }
}

/// IEEE binary16 → binary32, exact (all F16 values are representable in F32).
@inlinable public func widenF16(_ src: UnsafePointer<UInt16>, into dst: UnsafeMutablePointer<Float>, count: Int) {
    let s = UnsafeRawPointer(src).assumingMemoryBound(to: Float16.self)
    for i in 0..<count { dst[i] = Float(s[i]) }
}

/// bfloat16 → binary32, exact: the bf16 bits are the high half of the f32 bits.
@inlinable public func widenBF16(_ src: UnsafePointer<UInt16>, into dst: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { dst[i] = Float(bitPattern: UInt32(src[i]) << 16) }
}

/// `y[rows, out] (+)= x · wᵀ + bias` for a stored weight of any dtype (see `linear`).
@inlinable
public func linear(_ x: UnsafePointer<Float>, rows: Int, weight w: WeightMatrix, bias: UnsafePointer<Float>?,
                   into y: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>?,
                   ldx: Int? = nil, ldy: Int? = nil, accumulate: Bool = false) {
    if rows == 0 { return }
    linear(x, rows: rows, inFeatures: w.cols, weight: w.float32(scratch: scratch), outFeatures: w.rows, bias: bias,
           into: y, ldx: ldx, ldy: ldy, accumulate: accumulate)
}
