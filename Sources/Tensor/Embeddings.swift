import Foundation

/// Patch extraction for a Conv2d with kernel = stride = p (timm `PatchEmbed`) expressed as a GEMM.
///
/// `x` is `[batch, channels, height, width]`. `patches` receives `[batch·T, channels·p·p]` with T = (H/p)·(W/p),
/// token m = r·(W/p) + c (row-major over the patch grid), and each patch flattened channel-slowest, then patch
/// row, then patch column — the order of a conv weight `[D, C, p, p]`, so `patches · weightᵀ` is the conv.
public func patchify(_ x: UnsafePointer<Float>, batch: Int, channels: Int, height: Int, width: Int, patch p: Int,
                     into patches: UnsafeMutablePointer<Float>) {
    let gh = height / p, gw = width / p, vec = channels * p * p
    for b in 0..<batch {
        for r in 0..<gh {
            for c in 0..<gw {
                let row = patches + ((b * gh + r) * gw + c) * vec
                for ch in 0..<channels {
                    let plane = x + (b * channels + ch) * height * width
                    for pi in 0..<p {
                        let src = plane + (r * p + pi) * width + c * p
                        let dst = row + (ch * p + pi) * p
                        for qi in 0..<p { dst[qi] = src[qi] }
                    }
                }
            }
        }
    }
}

/// Inverse of the final layer's token layout: `tokens` is `[batch·T, p·p·channels]` with each token's vector
/// ordered `[pi][qi][c]` (channel fastest); `out` is `[batch, channels, height, width]` with pixel
/// `(c, r·p+pi, col·p+qi)` = token `r·G+col`, element `(pi·p+qi)·channels + c`. Note the channel order differs
/// from `patchify`'s (channel slowest there), as upstream.
public func unpatchify(_ tokens: UnsafePointer<Float>, batch: Int, channels: Int, height: Int, width: Int,
                       patch p: Int, into out: UnsafeMutablePointer<Float>) {
    let gh = height / p, gw = width / p, vec = channels * p * p
    for b in 0..<batch {
        for r in 0..<gh {
            for col in 0..<gw {
                let tok = tokens + ((b * gh + r) * gw + col) * vec
                for pi in 0..<p {
                    for qi in 0..<p {
                        for c in 0..<channels {
                            out[((b * channels + c) * height + r * p + pi) * width + col * p + qi] =
                                tok[(pi * p + qi) * channels + c]
                        }
                    }
                }
            }
        }
    }
}

/// The fixed 2-D sin-cos position table `[grid·grid, dim]` (MAE/DiT `get_2d_sincos_pos_embed`), computed in
/// Float64 and rounded to Float32. For token m: col = m mod grid, row = m div grid; with Q = dim/4 and
/// ω_k = 10000^(−k/Q): dims `[0, dim/2)` = [sin(col·ω), cos(col·ω)], dims `[dim/2, dim)` = the same for row.
public func positionEmbedding2D(dim: Int, grid: Int) -> [Float] {
    precondition(dim % 4 == 0, "positionEmbedding2D: dim \(dim) must be a multiple of 4")
    let q = dim / 4
    var table = [Float](repeating: 0, count: grid * grid * dim)
    for m in 0..<(grid * grid) {
        let coords = [Double(m % grid), Double(m / grid)]
        for (half, pos) in coords.enumerated() {
            for k in 0..<q {
                let omega = pow(10000.0, -Double(k) / Double(q))
                table[m * dim + half * 2 * q + k] = Float(sin(pos * omega))
                table[m * dim + half * 2 * q + q + k] = Float(cos(pos * omega))
            }
        }
    }
    return table
}

/// Sinusoidal timestep embedding (DiT `TimestepEmbedder.timestep_embedding`), `dim` = 256 in DiT:
/// freqs_k = exp(−ln(10000)·k/half), a = t·freqs, embedding = [cos(a), sin(a)] — cos first, unlike the position
/// table. `t` is in the model's own units (DDPM step index 0…999, or rectified-flow time in (0, 1]). Computed in
/// Float64 (upstream uses Float32; the difference is below 1e-4 absolute at t = 999).
public func timestepEmbedding(_ t: UnsafePointer<Float>, batch: Int, dim: Int, into out: UnsafeMutablePointer<Float>) {
    let half = dim / 2
    for b in 0..<batch {
        let row = out + b * dim
        for k in 0..<half {
            let a = Double(t[b]) * exp(-log(10000.0) * Double(k) / Double(half))
            row[k] = Float(cos(a))
            row[half + k] = Float(sin(a))
        }
        if dim % 2 == 1 { row[dim - 1] = 0 }
    }
}
