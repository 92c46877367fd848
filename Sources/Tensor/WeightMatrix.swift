/// Element type of stored weights. Unless a matrix is packed for oneDNN (`WeightMatrix.packed`, FP32 or BF16),
/// F16/BF16 weights stay in that form in memory and are widened per GEMM into a caller-owned scratch buffer.
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
    /// The same matrix in oneDNN's blocked layout (FP32 or BF16), made once at load; GEMMs use it when present.
    /// `base` stays valid (the stored values).
    public var packed: PackedWeight?

    public init(rows: Int, cols: Int, dtype: WeightDType, base: UnsafeRawPointer, packed: PackedWeight? = nil) {
        self.rows = rows; self.cols = cols; self.dtype = dtype; self.base = base; self.packed = packed
    }

    public var count: Int { rows * cols }

    /// Rows `range` as a matrix of their own (no copy; not packed).
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
    if let p = w.packed {
        let ldy = ldy ?? w.rows
        var acc = accumulate
        if let bias, !accumulate {
            for r in 0..<rows { (y + r * ldy).update(from: bias, count: w.rows) }
            acc = true
        }
        DNNL.linear(x, rows: rows, ldx: ldx ?? w.cols, weight: p, into: y, ldy: ldy, accumulate: acc)
        if let bias, accumulate {
            for r in 0..<rows { addInPlace(y + r * ldy, bias, count: w.rows) }
        }
        return
    }
    linear(x, rows: rows, inFeatures: w.cols, weight: w.float32(scratch: scratch), outFeatures: w.rows, bias: bias,
           into: y, ldx: ldx, ldy: ldy, accumulate: accumulate)
}

/// `y[rows, out] (+)= x · wᵀ` for `x` given as BF16 bits `[rows, in]` (dense) and `w` packed as BF16 (see
/// `bf16Packed`): equal to `linear` on the widened `x`, which would round it back to the same BF16 values.
@inlinable
public func linear(bf16 x: UnsafePointer<UInt16>, rows: Int, weight w: WeightMatrix, into y: UnsafeMutablePointer<Float>,
                   accumulate: Bool = false) {
    if rows == 0 { return }
    DNNL.linear(bf16: x, rows: rows, weight: w.packed!, into: y, accumulate: accumulate)
}

/// This thread's BF16 activation scratch, at least `count` values, 64-byte aligned: the buffer `linear` rounds
/// FP32 activations into for BF16 weights, so it is valid until the next such call on this thread (`linear(bf16:)`
/// does not touch it). Grows, never shrinks; allocates only when it grows.
public func bf16ActivationScratch(count: Int) -> UnsafeMutablePointer<UInt16> {
    ThreadContext.current.bf16Scratch(count: count)
}

extension WeightMatrix {
    /// Whether GEMMs with this weight take BF16 inputs (packed for oneDNN as BF16), so BF16 activations can be
    /// given to `linear(bf16:)` as they are.
    public var bf16Packed: Bool { packed?.precision == .bf16 }
}

/// `linear` on a stored weight with its rows split over the workers (see `parallelLinear` on pointers). A packed
/// weight is always split by rows (its blocked layout cannot be cut into column blocks); a weight that is not is
/// widened once into `scratch` (F16/BF16) and split as the pointer version does.
@inlinable
public func parallelLinear(_ x: UnsafePointer<Float>, rows: Int, weight w: WeightMatrix, bias: UnsafePointer<Float>?,
                           into y: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>?,
                           ldx: Int? = nil, ldy: Int? = nil, accumulate: Bool = false) {
    if rows == 0 { return }
    guard w.packed != nil else {
        parallelLinear(x, rows: rows, inFeatures: w.cols, weight: w.float32(scratch: scratch), outFeatures: w.rows,
                       bias: bias, into: y, ldx: ldx, ldy: ldy, accumulate: accumulate)
        return
    }
    let ldx = ldx ?? w.cols, ldy = ldy ?? w.rows
    Parallel.forChunks(rows, minChunk: 16) { _, r in
        linear(x + r.lowerBound * ldx, rows: r.count, weight: w, bias: bias, into: y + r.lowerBound * ldy,
               scratch: nil, ldx: ldx, ldy: ldy, accumulate: accumulate)
    }
}
