import Foundation

/// LayerNorm over the last `width` elements of each of `rows` rows, mean/variance in Float32 with the biased
/// variance (as torch.nn.LayerNorm). `weight`/`bias` are the optional affine parameters of length `width`.
/// Rows are read from `x` with stride `ldx` and written to `y` with stride `ldy` (`x == y` allowed).
@inlinable
public func layerNorm(_ x: UnsafePointer<Float>, rows: Int, width: Int, eps: Float,
                      weight: UnsafePointer<Float>? = nil, bias: UnsafePointer<Float>? = nil,
                      into y: UnsafeMutablePointer<Float>, ldx: Int? = nil, ldy: Int? = nil) {
    let ldx = ldx ?? width, ldy = ldy ?? width
    let n = Float(width)
    for r in 0..<rows {
        let xr = x + r * ldx, yr = y + r * ldy
        let mean = sum(xr, count: width) / n
        let variance = sumOfSquaredDeviations(xr, count: width, from: mean) / n
        let inv = 1 / (variance + eps).squareRoot()
        if let weight, let bias {
            for i in 0..<width { yr[i] = (xr[i] - mean) * inv * weight[i] + bias[i] }
        } else {
            for i in 0..<width { yr[i] = (xr[i] - mean) * inv }
        }
    }
}

/// Softmax over each of `rows` rows of length `width` (stride `ld`), in place, max-subtracted.
@inlinable
public func softmaxRowsInPlace(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int, ld: Int? = nil) {
    let ld = ld ?? width
    for r in 0..<rows {
        let xr = x + r * ld
        var m = -Float.infinity
        for i in 0..<width where xr[i] > m { m = xr[i] }
        var sum: Float = 0
        for i in 0..<width { let e = fastExp(xr[i] - m); xr[i] = e; sum += e }
        let inv = 1 / sum
        for i in 0..<width { xr[i] *= inv }
    }
}
