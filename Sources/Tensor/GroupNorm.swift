/// GroupNorm on NCHW Float32 (PyTorch `nn.GroupNorm`): for each image and each of `groups` groups of
/// `channels / groups` consecutive channels, normalise the group's `channels/groups · pixels` values (contiguous in
/// NCHW) by their mean and biased variance, `(v − mean) / √(var + eps)`, then apply the per-channel affine
/// `· weight[c] + bias[c]`. With `silu: true` the result goes through SiLU (x·σ(x)), the order every diffusers
/// ResnetBlock2D uses (norm, then SiLU).
///
/// Layout: `x` and `y` are `[batch, channels, pixels]` (pixels = height·width); `x == y` is allowed.
/// Statistics: per-channel partial sums in Float32 over 16 lanes (`sum`, `sumOfSquaredDeviations`), combined in
/// Float64 across the group's channels; variance is the two-pass Σ(v − mean)² / n.
public func groupNorm(_ x: UnsafePointer<Float>, batch: Int, channels: Int, pixels: Int, groups: Int, eps: Float,
                      weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, silu applySiLU: Bool = false,
                      into y: UnsafeMutablePointer<Float>) {
    precondition(groups > 0 && channels % groups == 0, "groupNorm: \(channels) channels not divisible into \(groups) groups")
    let perGroup = channels / groups
    let n = Double(perGroup * pixels)
    Parallel.forChunks(batch * groups) { _, range in
        for bg in range {
            let b = bg / groups, g = bg % groups
            let c0 = g * perGroup
            let base = b * channels * pixels + c0 * pixels
            var s = 0.0
            for c in 0..<perGroup { s += Double(sum(x + base + c * pixels, count: pixels)) }
            let mean = Float(s / n)
            var ss = 0.0
            for c in 0..<perGroup { ss += Double(sumOfSquaredDeviations(x + base + c * pixels, count: pixels, from: mean)) }
            let inv = Float(1 / (ss / n + Double(eps)).squareRoot())
            for c in 0..<perGroup {
                // v·scale + shift == (v − mean)·inv·w + b
                let scale = inv * weight[c0 + c]
                let shift = bias[c0 + c] - mean * scale
                let src = x + base + c * pixels, dst = y + base + c * pixels
                if applySiLU {
                    for i in 0..<pixels { dst[i] = silu(src[i] * scale + shift) }
                } else {
                    for i in 0..<pixels { dst[i] = src[i] * scale + shift }
                }
            }
        }
    }
}
