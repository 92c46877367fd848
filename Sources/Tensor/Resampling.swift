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
    let oh = pooledSize(height, kernel: kernel, stride: stride, padding: padding)
    let ow = pooledSize(width, kernel: kernel, stride: stride, padding: padding)
    Parallel.forChunks(planes) { _, range in
        for p in range {
            let src = x + p * height * width, dst = y + p * oh * ow
            for oy in 0..<oh {
                let y0 = oy * stride - padding
                let ya = max(y0, 0), yb = min(y0 + kernel, height)
                for ox in 0..<ow {
                    let x0 = ox * stride - padding
                    let xa = max(x0, 0), xb = min(x0 + kernel, width)
                    var s: Float = 0
                    for iy in ya..<max(ya, yb) { for ix in xa..<max(xa, xb) { s += src[iy * width + ix] } }
                    let count = countIncludePad ? kernel * kernel : max(0, yb - ya) * max(0, xb - xa)
                    dst[oy * ow + ox] = s / Float(max(count, 1))
                }
            }
        }
    }
}

/// Max pooling (`F.max_pool2d`, square window, floor mode); padding taps are −∞ (never chosen).
public func maxPool2d(_ x: UnsafePointer<Float>, planes: Int, height: Int, width: Int, kernel: Int, stride: Int,
                      padding: Int = 0, into y: UnsafeMutablePointer<Float>) {
    let oh = pooledSize(height, kernel: kernel, stride: stride, padding: padding)
    let ow = pooledSize(width, kernel: kernel, stride: stride, padding: padding)
    Parallel.forChunks(planes) { _, range in
        for p in range {
            let src = x + p * height * width, dst = y + p * oh * ow
            for oy in 0..<oh {
                let y0 = oy * stride - padding
                let ya = max(y0, 0), yb = min(y0 + kernel, height)
                for ox in 0..<ow {
                    let x0 = ox * stride - padding
                    let xa = max(x0, 0), xb = min(x0 + kernel, width)
                    var m = -Float.infinity
                    for iy in ya..<max(ya, yb) { for ix in xa..<max(xa, xb) { m = max(m, src[iy * width + ix]) } }
                    dst[oy * ow + ox] = m
                }
            }
        }
    }
}
