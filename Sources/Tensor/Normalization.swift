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

/// Softmax over each of `rows` rows of length `width` (stride `ld`), in place, max-subtracted. Runs 16 lanes at a
/// time (max, exp and sum per lane, then across lanes), the tail scalar; the sum's order differs from a sequential
/// loop by float rounding only (relative 1e-7).
@inlinable
public func softmaxRowsInPlace(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int, ld: Int? = nil) {
    let ld = ld ?? width
    let vectorWidth = width & ~15
    for r in 0..<rows {
        let xr = x + r * ld
        var m = -Float.infinity
        var mv = SIMD16<Float>(repeating: -.infinity)
        var i = 0
        while i < vectorWidth {
            mv = pointwiseMax(mv, UnsafeRawPointer(xr + i).loadUnaligned(as: SIMD16<Float>.self))
            i += 16
        }
        if vectorWidth > 0 { m = mv.max() }
        for k in vectorWidth..<width where xr[k] > m { m = xr[k] }
        var sv = SIMD16<Float>(repeating: 0)
        let mb = SIMD16<Float>(repeating: m)
        i = 0
        while i < vectorWidth {
            let e = fastExp16(UnsafeRawPointer(xr + i).loadUnaligned(as: SIMD16<Float>.self) - mb)
            UnsafeMutableRawPointer(xr + i).storeBytes(of: e, as: SIMD16<Float>.self)
            sv += e
            i += 16
        }
        var sum = sv.sum()
        for k in vectorWidth..<width { let e = fastExp(xr[k] - m); xr[k] = e; sum += e }
        let inv = 1 / sum
        for k in 0..<width { xr[k] *= inv }
    }
}
