/// Spatial resampling and pooling on NCHW Float32. `planes` is batch·channels: every kernel here treats each
/// `[height, width]` plane independently, so the layout is `[planes, height, width]`, contiguous.

/// Nearest-neighbour 2× upsampling (`F.interpolate(scale_factor=2, mode="nearest")`): `y[p, 2i + a, 2j + b] =
/// x[p, i, j]`; `y` is `[planes, 2·height, 2·width]` and must not overlap `x`.
public func upsampleNearest2x(_ x: UnsafePointer<Float>, planes: Int, height: Int, width: Int,
                              into y: UnsafeMutablePointer<Float>) {
    let ow = 2 * width
    Parallel.forChunks(planes) { _, range in
        for p in range {
            let src = x + p * height * width, dst = y + p * 4 * height * width
            for i in 0..<height {
                let row = dst + 2 * i * ow
                let s = src + i * width
                for j in 0..<width { let v = s[j]; row[2 * j] = v; row[2 * j + 1] = v }
                (row + ow).update(from: row, count: ow)
            }
        }
    }
}

/// Output size of a pooling window `kernel` with `stride` and symmetric zero `padding` (floor mode, PyTorch's
/// default `ceil_mode=False`).
@inlinable
public func pooledSize(_ n: Int, kernel: Int, stride: Int, padding: Int) -> Int { (n + 2 * padding - kernel) / stride + 1 }

/// Average pooling (`F.avg_pool2d`, square window, floor mode). `countIncludePad`: divide by kernel² always
/// (PyTorch's default, `count_include_pad=True`) or only by the number of in-image taps (`False`, what pytorch-fid's
/// FID Inception blocks use).
public func avgPool2d(_ x: UnsafePointer<Float>, planes: Int, height: Int, width: Int, kernel: Int, stride: Int,
                      padding: Int = 0, countIncludePad: Bool = true, into y: UnsafeMutablePointer<Float>) {
    pool2d(x, planes: planes, height: height, width: width, kernel: kernel, stride: stride, padding: padding, into: y) { src, rows, cols in
        var s: Float = 0
        for iy in rows { for ix in cols { s += src[iy * width + ix] } }
        return s / Float(max(countIncludePad ? kernel * kernel : rows.count * cols.count, 1))
    }
}

/// Max pooling (`F.max_pool2d`, square window, floor mode); padding taps are −∞ (never chosen).
public func maxPool2d(_ x: UnsafePointer<Float>, planes: Int, height: Int, width: Int, kernel: Int, stride: Int,
                      padding: Int = 0, into y: UnsafeMutablePointer<Float>) {
    pool2d(x, planes: planes, height: height, width: width, kernel: kernel, stride: stride, padding: padding, into: y) { src, rows, cols in
        var m = -Float.infinity
        for iy in rows { for ix in cols { m = max(m, src[iy * width + ix]) } }
        return m
    }
}

/// The window walk both poolings share: per plane and output position, `reduce` gets the plane and the in-image
/// rows and columns of the window (possibly empty at the border) and returns the output value.
private func pool2d(_ x: UnsafePointer<Float>, planes: Int, height: Int, width: Int, kernel: Int, stride: Int, padding: Int,
                    into y: UnsafeMutablePointer<Float>, _ reduce: (UnsafePointer<Float>, Range<Int>, Range<Int>) -> Float) {
    let oh = pooledSize(height, kernel: kernel, stride: stride, padding: padding)
    let ow = pooledSize(width, kernel: kernel, stride: stride, padding: padding)
    Parallel.forChunks(planes) { _, range in
        for p in range {
            let src = x + p * height * width, dst = y + p * oh * ow
            for oy in 0..<oh {
                let y0 = oy * stride - padding
                let ya = max(y0, 0), yb = max(ya, min(y0 + kernel, height))
                for ox in 0..<ow {
                    let x0 = ox * stride - padding
                    let xa = max(x0, 0), xb = max(xa, min(x0 + kernel, width))
                    dst[oy * ow + ox] = reduce(src, ya..<yb, xa..<xb)
                }
            }
        }
    }
}

/// Bilinear resize with `align_corners=False` and no antialiasing (`F.interpolate(mode="bilinear")`, what pytorch-fid
/// does before Inception): output pixel (i, j) reads the source point s = max((i + 0.5)·inH/outH − 0.5, 0) (likewise
/// for j), i0 = ⌊s⌋, i1 = min(i0 + 1, inH − 1), weights 1 − (s − i0) and s − i0; coordinates in Float32 as
/// PyTorch's CPU kernel computes them. `y` is `[planes, outH, outW]` and must not overlap `x`.
public func resizeBilinear(_ x: UnsafePointer<Float>, planes: Int, height: Int, width: Int, outHeight: Int,
                           outWidth: Int, into y: UnsafeMutablePointer<Float>) {
    // Per output row / column: the two source indices and their weights (computed once per call).
    func taps(_ inSize: Int, _ outSize: Int) -> (i0: [Int], i1: [Int], w1: [Float]) {
        let scale = Float(inSize) / Float(outSize)
        var i0 = [Int](repeating: 0, count: outSize), i1 = i0, w1 = [Float](repeating: 0, count: outSize)
        for d in 0..<outSize {
            let s = max(scale * (Float(d) + 0.5) - 0.5, 0)
            let lo = min(Int(s), inSize - 1)
            i0[d] = lo; i1[d] = min(lo + 1, inSize - 1); w1[d] = s - Float(lo)
        }
        return (i0, i1, w1)
    }
    let rows = taps(height, outHeight), cols = taps(width, outWidth)
    Parallel.forChunks(planes) { _, range in
        for p in range {
            let src = x + p * height * width, dst = y + p * outHeight * outWidth
            for i in 0..<outHeight {
                let r0 = src + rows.i0[i] * width, r1 = src + rows.i1[i] * width
                let b = rows.w1[i], a = 1 - b
                let out = dst + i * outWidth
                for j in 0..<outWidth {
                    let c0 = cols.i0[j], c1 = cols.i1[j], d = cols.w1[j], c = 1 - d
                    out[j] = a * (c * r0[c0] + d * r0[c1]) + b * (c * r1[c0] + d * r1[c1])
                }
            }
        }
    }
}
