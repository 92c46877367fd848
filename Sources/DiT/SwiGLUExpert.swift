import Tensor

/// One SwiGLU MLP without biases (`MoeMLP`): e(h) = down(SiLU(gate_proj h) ⊙ up_proj h). Routed experts have
/// width H = 4D; the shared expert has H = 2D. `gateUp` is the fused `[gate_proj; up_proj]` weight `[2H, D]`.
public struct SwiGLUExpert: @unchecked Sendable {
    public let gateUp: WeightMatrix
    public let down: WeightMatrix
    public var dim: Int { gateUp.cols }
    public var width: Int { down.cols }

    public init(gateUp: WeightMatrix, down: WeightMatrix) {
        precondition(gateUp.rows == 2 * down.cols && gateUp.cols == down.rows, "SwiGLUExpert: shapes disagree")
        self.gateUp = gateUp; self.down = down
    }

    /// Rows processed per GEMM pair; bounds the `hidden` scratch (see `hiddenScratchCount`).
    public static let maxChunkRows = 512

    /// Floats of `hidden` scratch `apply` needs for up to `rows` rows of an expert of width `width`: the fused
    /// gate+up output `[n, 2H]` followed by the activated `[n, H]` the down GEMM reads (n = min(rows, maxChunkRows)).
    public static func hiddenScratchCount(rows: Int = maxChunkRows, width: Int) -> Int {
        3 * min(rows, maxChunkRows) * width
    }

    /// Floats of widening scratch `apply` needs for this expert's weights (0 when both are F32 or both packed).
    public var widenScratchCount: Int {
        if gateUp.packed != nil && down.packed != nil { return 0 }
        return (gateUp.dtype == .f32 ? 0 : gateUp.count) + (down.dtype == .f32 ? 0 : down.count)
    }

    /// `out[rows, D] (+)= scale[r] · e(x[rows, D])` (no scaling when `rowScale` is nil): per chunk of rows one
    /// fused gate+up GEMM, SwiGLU (times the row's scale, which commutes with the linear down projection) compacted
    /// to a dense `[n, H]` matrix (in place in FP32; into this thread's BF16 scratch when `down` is packed
    /// BF16) and one down GEMM.
    /// - `hidden`: scratch of `hiddenScratchCount(rows:width:)` floats.
    /// - `widen`: scratch of `widenScratchCount` floats for F16/BF16 weights (nil when weights are F32).
    public func apply(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>,
                      rowScale: UnsafePointer<Float>? = nil, accumulate: Bool,
                      hidden: UnsafeMutablePointer<Float>, widen: UnsafeMutablePointer<Float>?) {
        if rows == 0 { return }
        let d = dim
        if gateUp.packed != nil && down.packed != nil {
            var start = 0
            while start < rows {
                let n = min(Self.maxChunkRows, rows - start)
                linear(x + start * d, rows: n, weight: gateUp, bias: nil, into: hidden, scratch: nil)
                project(hidden, rows: n, scale: rowScale.map { $0 + start }, into: out + start * d, accumulate: accumulate)
                start += n
            }
            return
        }
        applyWidened(x, rows: rows, into: out, rowScale: rowScale, accumulate: accumulate, hidden: hidden, widen: widen)
    }

    /// Whether `apply(bf16:)` can be used: both matrices packed as BF16.
    public var takesBF16: Bool { gateUp.bf16Packed && down.bf16Packed }

    /// `apply` on activations given as BF16 bits `[rows, D]` (when `takesBF16`): the fused gate+up GEMM reads them
    /// as they are, where `apply` would round FP32 activations to these same BF16 values first.
    public func apply(bf16 x: UnsafePointer<UInt16>, rows: Int, into out: UnsafeMutablePointer<Float>,
                      rowScale: UnsafePointer<Float>? = nil, accumulate: Bool, hidden: UnsafeMutablePointer<Float>) {
        precondition(takesBF16, "SwiGLUExpert.apply(bf16:): the weights are not packed as BF16")
        let d = dim
        var start = 0
        while start < rows {
            let n = min(Self.maxChunkRows, rows - start)
            linear(bf16: x + start * d, rows: n, weight: gateUp, into: hidden)
            project(hidden, rows: n, scale: rowScale.map { $0 + start }, into: out + start * d, accumulate: accumulate)
            start += n
        }
    }

    /// SwiGLU on the fused `[n, 2H]` GEMM output in `hidden`, then the down projection into `out[n, D]`.
    @inline(__always)
    private func project(_ hidden: UnsafeMutablePointer<Float>, rows n: Int, scale: UnsafePointer<Float>?,
                         into out: UnsafeMutablePointer<Float>, accumulate: Bool) {
        if down.bf16Packed {
            let act = bf16ActivationScratch(count: n * width)
            swigluToBF16(hidden, rows: n, width: width, scale: scale, into: act)
            linear(bf16: act, rows: n, weight: down, into: out, accumulate: accumulate)
        } else {
            let act = hidden + n * 2 * width
            swiglu(hidden, rows: n, width: width, scale: scale, into: act)
            linear(act, rows: n, weight: down, bias: nil, into: out, scratch: nil, accumulate: accumulate)
        }
    }

    private func applyWidened(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>,
                              rowScale: UnsafePointer<Float>?, accumulate: Bool,
                              hidden: UnsafeMutablePointer<Float>, widen: UnsafeMutablePointer<Float>?) {
        let d = dim, h = width
        let gu = gateUp.float32(scratch: widen)
        let dw = down.float32(scratch: gateUp.dtype == .f32 ? widen : widen.map { $0 + gateUp.count })
        var start = 0
        while start < rows {
            let n = min(Self.maxChunkRows, rows - start)
            linear(x + start * d, rows: n, inFeatures: d, weight: gu, outFeatures: 2 * h, bias: nil, into: hidden)
            let act = hidden + n * 2 * h
            swiglu(hidden, rows: n, width: h, scale: rowScale.map { $0 + start }, into: act)
            linear(act, rows: n, inFeatures: h, weight: dw, outFeatures: d, bias: nil,
                   into: out + start * d, accumulate: accumulate)
            start += n
        }
    }
}
