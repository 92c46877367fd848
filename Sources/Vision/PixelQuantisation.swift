/// How a decoded sample in [−1, 1] becomes 8-bit pixels for FID (FID tools read uint8 images; what they see is what
/// this rule produces, so it must match the run being reproduced).
public enum PixelQuantisation: String, CaseIterable, Sendable {
    /// u = floor(255 · clamp((x + 1) / 2, 0, 1)): truncation, as `torch.clamp(x, 0, 1).mul(255).to(torch.uint8)` and
    /// as the DMCMC FID notebooks write images.
    case truncate
    /// u = floor(clamp(127.5 · x + 128, 0, 255)): DiT / DiT-MoE `sample_ddp.py` (the FID-50K .npz for the ADM
    /// evaluator). 127.5·x + 128 = 255·(x + 1)/2 + 0.5, so this rounds half up rather than truncating.
    case roundHalfUp

    @inlinable @inline(__always)
    public func pixel(_ x: Float) -> UInt8 {
        switch self {
        case .truncate:
            let v = min(max((x + 1) * 0.5, 0), 1) * 255
            return UInt8(v)  // v ∈ [0, 255]; UInt8(Float) truncates toward zero
        case .roundHalfUp:
            let v = min(max(127.5 * x + 128, 0), 255)
            return UInt8(v)
        }
    }

    /// `count` samples → pixels (NaN maps to 0: `min`/`max` with NaN return the bound).
    @inlinable
    public func quantise(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<UInt8>) {
        for i in 0..<count { out[i] = pixel(x[i].isNaN ? -1 : x[i]) }
    }
}
