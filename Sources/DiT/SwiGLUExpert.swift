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

    /// Rows processed per GEMM pair; bounds the `hidden` scratch at `maxChunkRows · 2H` floats.
    public static let maxChunkRows = 512

    /// Floats of widening scratch `apply` needs for this expert's weights (0 when both are F32 or both packed).
    public var widenScratchCount: Int {
        if gateUp.packed != nil && down.packed != nil { return 0 }
        return (gateUp.dtype == .f32 ? 0 : gateUp.count) + (down.dtype == .f32 ? 0 : down.count)
    }

    /// `out[rows, D] (+)= e(x[rows, D])`: per chunk of rows one fused gate+up GEMM, SwiGLU in place, and one down
    /// GEMM reading the activated half of each fused row (leading dimension 2H).
    /// - `hidden`: scratch of `min(rows, maxChunkRows) · 2H` floats.
    /// - `widen`: scratch of `widenScratchCount` floats for F16/BF16 weights (nil when weights are F32).
    public func apply(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool,
                      hidden: UnsafeMutablePointer<Float>, widen: UnsafeMutablePointer<Float>?) {
        if rows == 0 { return }
        let d = dim, h = width
        if gateUp.packed != nil && down.packed != nil {
            var start = 0
            while start < rows {
                let n = min(Self.maxChunkRows, rows - start)
                linear(x + start * d, rows: n, weight: gateUp, bias: nil, into: hidden, scratch: nil)
                swigluInPlace(hidden, rows: n, width: h)
                linear(hidden, rows: n, weight: down, bias: nil, into: out + start * d, scratch: nil, ldx: 2 * h,
                       accumulate: accumulate)
                start += n
            }
            return
        }
        applyWidened(x, rows: rows, into: out, accumulate: accumulate, hidden: hidden, widen: widen)
    }

    /// Whether `apply(bf16:)` can be used: both matrices packed as BF16.
    public var takesBF16: Bool { gateUp.bf16Packed && down.bf16Packed }

    /// `apply` on activations given as BF16 bits `[rows, D]` (when `takesBF16`): the fused gate+up GEMM reads them
    /// as they are, where `apply` would round FP32 activations to these same BF16 values first.
    public func apply(bf16 x: UnsafePointer<UInt16>, rows: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool,
                      hidden: UnsafeMutablePointer<Float>) {
        precondition(takesBF16, "SwiGLUExpert.apply(bf16:): the weights are not packed as BF16")
        let d = dim, h = width
        var start = 0
        while start < rows {
            let n = min(Self.maxChunkRows, rows - start)
            linear(bf16: x + start * d, rows: n, weight: gateUp, into: hidden)
            swigluInPlace(hidden, rows: n, width: h)
            linear(hidden, rows: n, weight: down, bias: nil, into: out + start * d, scratch: nil, ldx: 2 * h,
                   accumulate: accumulate)
            start += n
        }
    }

    private func applyWidened(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool,
                              hidden: UnsafeMutablePointer<Float>, widen: UnsafeMutablePointer<Float>?) {
        let d = dim, h = width
        let gu = gateUp.float32(scratch: widen)
        let dw = down.float32(scratch: gateUp.dtype == .f32 ? widen : widen.map { $0 + gateUp.count })
        var start = 0
        while start < rows {
            let n = min(Self.maxChunkRows, rows - start)
            linear(x + start * d, rows: n, inFeatures: d, weight: gu, outFeatures: 2 * h, bias: nil, into: hidden)
            swigluInPlace(hidden, rows: n, width: h)
            linear(hidden, rows: n, inFeatures: h, weight: dw, outFeatures: d, bias: nil,
                   into: out + start * d, ldx: 2 * h, accumulate: accumulate)
            start += n
        }
    }
}
