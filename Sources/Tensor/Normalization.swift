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

/// Softmax over each of `rows` rows of length `width` (stride `ld`), in place, max-subtracted. The max and the sum
/// run on 8 partial accumulators (so the loops pipeline; the sum's order differs from a sequential one by float
/// rounding only) and the exp loop vectorises.
@inlinable
public func softmaxRowsInPlace(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int, ld: Int? = nil) {
    let ld = ld ?? width
    for r in 0..<rows {
        let xr = x + r * ld
        let m = rowMax(xr, count: width)
        for i in 0..<width { xr[i] = fastExp(xr[i] - m) }
        let inv = 1 / rowSum(xr, count: width)
        for i in 0..<width { xr[i] *= inv }
    }
}

/// Largest of `count` values (−∞ for none), on 8 partial maxima.
@inlinable @inline(__always)
func rowMax(_ p: UnsafePointer<Float>, count n: Int) -> Float {
    var a0 = -Float.infinity, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
    var i = 0
    while i + 8 <= n {
        a0 = max(a0, p[i]); a1 = max(a1, p[i + 1]); a2 = max(a2, p[i + 2]); a3 = max(a3, p[i + 3])
        a4 = max(a4, p[i + 4]); a5 = max(a5, p[i + 5]); a6 = max(a6, p[i + 6]); a7 = max(a7, p[i + 7])
        i += 8
    }
    var m = max(max(max(a0, a1), max(a2, a3)), max(max(a4, a5), max(a6, a7)))
    while i < n { m = max(m, p[i]); i += 1 }
    return m
}

/// Sum of `count` values on 8 partial sums.
@inlinable @inline(__always)
func rowSum(_ p: UnsafePointer<Float>, count n: Int) -> Float {
    var a0: Float = 0, a1: Float = 0, a2: Float = 0, a3: Float = 0, a4: Float = 0, a5: Float = 0, a6: Float = 0, a7: Float = 0
    var i = 0
    while i + 8 <= n {
        a0 += p[i]; a1 += p[i + 1]; a2 += p[i + 2]; a3 += p[i + 3]
        a4 += p[i + 4]; a5 += p[i + 5]; a6 += p[i + 6]; a7 += p[i + 7]
        i += 8
    }
    var s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
    while i < n { s += p[i]; i += 1 }
    return s
}
