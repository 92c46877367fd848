import CDNNL
import Foundation

/// Channels-last (NHWC) kernels: the layout the SD-VAE decoder runs in, so that every convolution is one
/// pixel-major GEMM `y[P, Cout] = col[P, K] · Wᵀ` with the weight as the GEMM's B operand, packed once at load for
/// oneDNN exactly as the DiT's `linear` weights are (FP32 `BA16a64b` or BF16 `BA16a64b2a`).
///
/// Layout: an activation is `[batch, height, width, channels]` row-major, i.e. `[batch·pixels, channels]`: one row per
/// pixel, which is the token-major matrix the GEMMs take as their A operand.

/// A convolution's weights for `conv2dChannelsLast`: the PyTorch `[Cout, Cin, kh, kw]` tensor permuted once to the
/// matrix `W[Cout, K]`, `K = kh·kw·Cin`, column index `(ky·kw + kx)·Cin + ci` (the order the pixel-major im2col
/// writes), and packed for oneDNN when `pack` is true (FP32 or BF16). An unpacked matrix runs FP32 on whatever
/// `GEMMBackend.current` is.
public struct ChannelsLastConvWeights: @unchecked Sendable {
    public let shape: Conv2DShape
    public let matrix: WeightMatrix
    public let bias: FloatBuffer
    /// Owns `matrix.base` (the permuted FP32 values).
    private let storage: FloatBuffer
    /// Arithmetic of this conv's GEMM: BF16 only when packed as BF16.
    public var precision: ComputePrecision { matrix.packed?.precision ?? .fp32 }

    /// `weight`: `[Cout, Cin, kh, kw]` FP32 as stored; `bias`: `[Cout]` (copied). `pack`: pack for oneDNN in
    /// `precision` (needs oneDNN); without it the GEMM is FP32 and `precision` must be `.fp32`.
    public init(shape: Conv2DShape, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, pack: Bool,
                precision: ComputePrecision) throws {
        precondition(pack || precision == .fp32, "ChannelsLastConvWeights: BF16 needs packed (oneDNN) weights")
        self.shape = shape
        let cout = shape.outChannels, cin = shape.inChannels, kh = shape.kernelH, kw = shape.kernelW
        let k = shape.columnRows
        storage = FloatBuffer(count: cout * k)
        let w = storage.pointer
        for o in 0..<cout {
            for ci in 0..<cin {
                for ky in 0..<kh {
                    for kx in 0..<kw {
                        w[o * k + (ky * kw + kx) * cin + ci] = weight[((o * cin + ci) * kh + ky) * kw + kx]
                    }
                }
            }
        }
        self.bias = FloatBuffer(count: cout)
        if let bias { self.bias.pointer.update(from: bias, count: cout) }
        var m = WeightMatrix(rows: cout, cols: k, dtype: .f32, base: UnsafeRawPointer(w))
        if pack { m.packed = try PackedWeight(float32: w, rows: cout, cols: k, precision: precision) }
        matrix = m
    }
}

/// Floats of `WorkerScratch` per worker `conv2dChannelsLast` needs for at least one output pixel.
public func channelsLastConvMinimumScratch(_ shape: Conv2DShape) -> Int { shape.columnRows }

/// `y = conv2d(x, W) + b` on NHWC tensors (see `Conv2DShape` for sizes; `x` `[batch, height, width, Cin]`, `y`
/// `[batch, outH, outW, Cout]`). With `accumulate`, `y += conv2d(x, W) + b` (a residual add fused into the GEMM).
///
/// Each image's output pixels are cut into bands of at most `scratch.floatsPerWorker / K` pixels (whole images'
/// worth of bands shared over `Parallel.threads` workers). Per band the worker writes the pixel-major column matrix
/// `col[p, (ky·kw + kx)·Cin + ci] = x[n, oy·sh − ph + ky, ox·sw − pw + kx, ci]` (0 in the padding) into its scratch
/// and calls `linear` once: `y[band, Cout] (+)= col · Wᵀ + b`. A 1×1, stride-1, unpadded conv reads `x` directly
/// (no im2col). `x` and `y` must not overlap.
///
/// BF16 (weight packed BF16): the columns are BF16, each value rounded to nearest even. With `bf16Input` (room for
/// `batch·height·width·Cin` values) the whole input is rounded once into it first — by a oneDNN reorder (JIT,
/// `vcvtneps2bf16` on this CPU), split over the workers — and im2col copies BF16 runs; without it, im2col rounds as
/// it copies (in Swift, on the compiler's baseline vector width, and each input value once per kernel tap). Both
/// give the same BF16 values.
public func conv2dChannelsLast(_ x: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
                               weights cw: ChannelsLastConvWeights, into y: UnsafeMutablePointer<Float>,
                               accumulate: Bool = false, bf16Input: UnsafeMutablePointer<UInt16>? = nil,
                               scratch: WorkerScratch) {
    let s = cw.shape
    let (oh, ow) = s.outputSize(height: height, width: width)
    precondition(oh > 0 && ow > 0, "conv2dChannelsLast: \(s) on \(height)×\(width) gives an empty output")
    let k = s.columnRows, cin = s.inChannels, cout = s.outChannels
    let pixels = oh * ow
    let direct = s.kernelH == 1 && s.kernelW == 1 && s.strideH == 1 && s.strideW == 1 && s.padH == 0 && s.padW == 0
    precondition(direct || scratch.floatsPerWorker >= k,
                 "conv2dChannelsLast: \(s) needs \(k) scratch floats per worker, has \(scratch.floatsPerWorker)")
    let workers = max(1, min(Parallel.threads, scratch.workers))
    // Band: as many pixels as the scratch holds, but at least `workers` bands per batch so every worker has work.
    let perBand = max(1, min(direct ? pixels : scratch.floatsPerWorker / k, (batch * pixels + workers - 1) / workers))
    let bandsPerImage = (pixels + perBand - 1) / perBand
    let total = batch * bandsPerImage
    let bf16 = cw.precision == .bf16
    let inImage = height * width * cin
    let xb: UnsafePointer<UInt16>? = bf16 ? bf16Input.map { xb in
        DNNL.parallelRoundToBF16(x, count: batch * inImage, into: xb)
        return UnsafePointer(xb)
    } : nil
    let run: (Int, Range<Int>) -> Void = { worker, bands in
        let col = scratch.block(worker)
        for band in bands {
            let n = band / bandsPerImage
            let p0 = (band % bandsPerImage) * perBand
            let count = min(perBand, pixels - p0)
            let yBand = y + (n * pixels + p0) * cout
            if direct, let xb {
                linearBF16Columns(xb + (n * pixels + p0) * cin, rows: count, weights: cw, into: yBand, accumulate: accumulate)
            } else if direct {
                linear(x + (n * pixels + p0) * cin, rows: count, weight: cw.matrix, bias: cw.bias.pointer, into: yBand,
                       scratch: nil, accumulate: accumulate)
            } else if let xb {
                col.withMemoryRebound(to: UInt16.self, capacity: count * k) { colB in
                    im2colChannelsLast(xb + n * inImage, height: height, width: width, shape: s, outWidth: ow,
                                       pixels: p0..<(p0 + count), into: colB, convert: { $0 }, zero: 0)
                    linearBF16Columns(colB, rows: count, weights: cw, into: yBand, accumulate: accumulate)
                }
            } else if bf16 {
                col.withMemoryRebound(to: UInt16.self, capacity: count * k) { colB in
                    im2colChannelsLast(x + n * inImage, height: height, width: width, shape: s, outWidth: ow,
                                       pixels: p0..<(p0 + count), into: colB, convert: bf16Bits, zero: 0)
                    linearBF16Columns(colB, rows: count, weights: cw, into: yBand, accumulate: accumulate)
                }
            } else {
                im2colChannelsLast(x + n * inImage, height: height, width: width, shape: s, outWidth: ow,
                                   pixels: p0..<(p0 + count), into: col, convert: { $0 }, zero: 0)
                linear(UnsafePointer(col), rows: count, weight: cw.matrix, bias: cw.bias.pointer, into: yBand,
                       scratch: nil, accumulate: accumulate)
            }
        }
    }
    if workers <= 1 || total == 1 {
        run(0, 0..<total)
    } else {
        let w = min(workers, total)
        Parallel.run(w) { worker in run(worker, (total * worker / w)..<(total * (worker + 1) / w)) }
    }
}

/// `y[rows, Cout] (+)= col · Wᵀ + b` for BF16 columns and a BF16-packed weight (the bias as `linear` adds it).
@inlinable
func linearBF16Columns(_ col: UnsafePointer<UInt16>, rows: Int, weights cw: ChannelsLastConvWeights,
                       into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
    let cout = cw.shape.outChannels, b = cw.bias.pointer
    if accumulate {
        linear(bf16: col, rows: rows, weight: cw.matrix, into: y, accumulate: true)
        for r in 0..<rows { addInPlace(y + r * cout, b, count: cout) }
    } else {
        for r in 0..<rows { (y + r * cout).update(from: b, count: cout) }
        linear(bf16: col, rows: rows, weight: cw.matrix, into: y, accumulate: true)
    }
}

/// The pixel-major im2col of output pixels `pixels` (flattened `oy·outWidth + ox`) of one NHWC image:
/// `col[i, (ky·kw + kx)·Cin + ci] = convert(x[oy·sh − ph + ky, ox·sw − pw + kx, ci])` for the i-th pixel of the
/// range, `zero` where the tap is outside the image. `col` is dense, `pixels.count × K`. Each tap is one contiguous
/// run of Cin values.
@inlinable
public func im2colChannelsLast<S, T>(_ x: UnsafePointer<S>, height: Int, width: Int, shape s: Conv2DShape,
                                     outWidth ow: Int, pixels: Range<Int>, into col: UnsafeMutablePointer<T>,
                                     convert: (S) -> T, zero: T) {
    let cin = s.inChannels, k = s.columnRows
    for (i, p) in pixels.enumerated() {
        let oy = p / ow, ox = p % ow
        let row = col + i * k
        for ky in 0..<s.kernelH {
            let iy = oy * s.strideH - s.padH + ky
            for kx in 0..<s.kernelW {
                let ix = ox * s.strideW - s.padW + kx
                let dst = row + (ky * s.kernelW + kx) * cin
                if iy < 0 || iy >= height || ix < 0 || ix >= width {
                    dst.update(repeating: zero, count: cin)
                } else {
                    let src = x + (iy * width + ix) * cin
                    if S.self == T.self {
                        UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: cin * MemoryLayout<T>.stride)
                    } else {
                        for c in 0..<cin { dst[c] = convert(src[c]) }
                    }
                }
            }
        }
    }
}

/// GroupNorm (as `groupNorm`) on NHWC `[batch, pixels, channels]`: per image and group of `channels / groups`
/// consecutive channels, mean and biased variance over the group's channels and all pixels, then the per-channel
/// affine and optional SiLU. `x == y` is allowed.
///
/// Statistics in one pass over each image (then one affine pass): per channel c, with the shift k_c = the channel's
/// value at the image's first pixel, S1_c = Σ(v − k_c) and S2_c = Σ(v − k_c)², summed over 64-pixel runs in Float32
/// and accumulated in Float64 per worker (pixels split over `Parallel.threads` workers). Per group, in Float64:
/// mean μ = Σ_c (S1_c + P·k_c) / n and variance Σ_c [S2_c − 2(μ − k_c)·S1_c + P·(μ − k_c)²] / n, n = P·channels per
/// group — algebraically the two-pass Σ(v − μ)² / n; the shift keeps the Float32 run sums small (k_c is a sample of
/// the channel, so |v − k_c| is of the order of the spread, not of the mean).
public func groupNormChannelsLast(_ x: UnsafePointer<Float>, batch: Int, pixels: Int, channels c: Int, groups: Int,
                                  eps: Float, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                  silu applySiLU: Bool = false, into y: UnsafeMutablePointer<Float>) {
    precondition(groups > 0 && c % groups == 0, "groupNormChannelsLast: \(c) channels not divisible into \(groups) groups")
    let perGroup = c / groups
    let workers = max(1, min(Parallel.threads, pixels / 64))
    // Per worker: Float64 accumulators S1, S2 [c] each and Float32 run sums [c] each; then per-channel scale, shift.
    let acc = UnsafeMutablePointer<Double>.allocate(capacity: 2 * workers * c)
    let run32 = UnsafeMutablePointer<Float>.allocate(capacity: 2 * workers * c)
    let scale = UnsafeMutablePointer<Float>.allocate(capacity: 3 * c)
    let shift = scale + c, k = scale + 2 * c
    defer { acc.deallocate(); run32.deallocate(); scale.deallocate() }
    let n = Double(perGroup * pixels), p = Double(pixels)
    for b in 0..<batch {
        let xi = x + b * pixels * c, yi = y + b * pixels * c
        k.update(from: xi, count: c)
        Parallel.run(workers) { w in
            let a1 = acc + 2 * w * c, a2 = a1 + c, r1 = run32 + 2 * w * c, r2 = r1 + c
            a1.update(repeating: 0, count: 2 * c)
            let lo = pixels * w / workers, hi = pixels * (w + 1) / workers
            var q = lo
            while q < hi {
                let end = min(q + 64, hi)
                r1.update(repeating: 0, count: 2 * c)
                for i in q..<end {
                    let v = xi + i * c
                    for ch in 0..<c { let d = v[ch] - k[ch]; r1[ch] += d; r2[ch] += d * d }
                }
                for ch in 0..<c { a1[ch] += Double(r1[ch]); a2[ch] += Double(r2[ch]) }
                q = end
            }
        }
        for g in 0..<groups {
            var s1 = 0.0, s2 = 0.0
            for ch in (g * perGroup)..<((g + 1) * perGroup) {
                for w in 0..<workers { s1 += acc[2 * w * c + ch]; s2 += acc[2 * w * c + c + ch] }
                s1 += p * Double(k[ch])
            }
            let mean = s1 / n
            var ss = 0.0
            for ch in (g * perGroup)..<((g + 1) * perGroup) {
                var c1 = 0.0
                for w in 0..<workers { c1 += acc[2 * w * c + ch]; ss += acc[2 * w * c + c + ch] }
                let dk = mean - Double(k[ch])
                ss += -2 * dk * c1 + p * dk * dk
            }
            let inv = Float(1 / (max(ss, 0) / n + Double(eps)).squareRoot())
            for ch in (g * perGroup)..<((g + 1) * perGroup) {
                scale[ch] = inv * weight[ch]
                shift[ch] = bias[ch] - Float(mean) * scale[ch]  // v·scale + shift == (v − mean)·inv·w + b
            }
        }
        Parallel.forChunks(pixels, minChunk: 64) { _, range in
            for q in range {
                let src = xi + q * c, dst = yi + q * c
                if applySiLU {
                    for ch in 0..<c { dst[ch] = silu(src[ch] * scale[ch] + shift[ch]) }
                } else {
                    for ch in 0..<c { dst[ch] = src[ch] * scale[ch] + shift[ch] }
                }
            }
        }
    }
}

/// Nearest-neighbour 2× upsampling on NHWC: `y[n, 2i + a, 2j + b, :] = x[n, i, j, :]`; `y` is
/// `[batch, 2·height, 2·width, channels]` and must not overlap `x`.
public func upsampleNearest2xChannelsLast(_ x: UnsafePointer<Float>, batch: Int, height: Int, width: Int, channels c: Int,
                                          into y: UnsafeMutablePointer<Float>) {
    let ow = 2 * width
    Parallel.forChunks(batch * height) { _, rows in
        for r in rows {
            let n = r / height, i = r % height
            let src = x + (n * height + i) * width * c
            let dst = y + (n * 2 * height + 2 * i) * ow * c
            for j in 0..<width {
                (dst + 2 * j * c).update(from: src + j * c, count: c)
                (dst + (2 * j + 1) * c).update(from: src + j * c, count: c)
            }
            (dst + ow * c).update(from: dst, count: ow * c)
        }
    }
}

/// `[batch, channels, pixels]` → `[batch, pixels, channels]`, times `scale`.
public func nchwToNHWC(_ x: UnsafePointer<Float>, batch: Int, channels c: Int, pixels p: Int, scale: Float = 1,
                       into y: UnsafeMutablePointer<Float>) {
    for n in 0..<batch {
        for ch in 0..<c {
            let src = x + (n * c + ch) * p, dst = y + n * p * c + ch
            for i in 0..<p { dst[i * c] = src[i] * scale }
        }
    }
}

/// `[batch, pixels, channels]` → `[batch, channels, pixels]`.
public func nhwcToNCHW(_ x: UnsafePointer<Float>, batch: Int, channels c: Int, pixels p: Int, into y: UnsafeMutablePointer<Float>) {
    for n in 0..<batch {
        for ch in 0..<c {
            let src = x + n * p * c + ch, dst = y + (n * c + ch) * p
            for i in 0..<p { dst[i] = src[i * c] }
        }
    }
}

/// `spatialSelfAttention` on token-major (NHWC) input: per image, with `xn` `[pixels, channels]` and PyTorch `[out,
/// in]` weights, q = xn·Wqᵀ + bq (likewise k, v; `[P, C]`), S = softmax_rows(q·kᵀ/√C) (`[P, P]`), y = (S·v)·Woᵀ + bo
/// (+ residual). FP32, plain (unpacked) weights; rows of every GEMM split over the workers. Scratch: the same
/// `spatialAttentionScratchCount(channels:pixels:)` floats. `y` must not overlap `xn`; it may be `residual`.
public func spatialSelfAttentionChannelsLast(_ xn: UnsafePointer<Float>, batch: Int, channels c: Int, pixels p: Int,
                                             wq: UnsafePointer<Float>, bq: UnsafePointer<Float>,
                                             wk: UnsafePointer<Float>, bk: UnsafePointer<Float>,
                                             wv: UnsafePointer<Float>, bv: UnsafePointer<Float>,
                                             wo: UnsafePointer<Float>, bo: UnsafePointer<Float>,
                                             residual: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>,
                                             scratch: UnsafeMutablePointer<Float>) {
    let q = scratch, k = q + c * p, v = k + c * p, o = v + c * p, s = o + c * p
    let scale = 1 / Float(c).squareRoot()
    for n in 0..<batch {
        let x = xn + n * p * c, yn = y + n * p * c
        parallelLinear(x, rows: p, inFeatures: c, weight: wq, outFeatures: c, bias: bq, into: q)
        parallelLinear(x, rows: p, inFeatures: c, weight: wk, outFeatures: c, bias: bk, into: k)
        parallelLinear(x, rows: p, inFeatures: c, weight: wv, outFeatures: c, bias: bv, into: v)
        Parallel.forChunks(p, minChunk: 16) { _, rows in
            // S[rows, :] = scale · q[rows, :] · kᵀ, softmax per row, then o[rows, :] = S[rows, :] · v.
            gemm(transB: true, m: rows.count, n: p, k: c, alpha: scale, a: q + rows.lowerBound * c, lda: c,
                 b: k, ldb: c, c: s + rows.lowerBound * p, ldc: p)
            softmaxRowsInPlace(s + rows.lowerBound * p, rows: rows.count, width: p)
            gemm(transB: false, m: rows.count, n: c, k: p, a: s + rows.lowerBound * p, lda: p, b: v, ldb: c,
                 c: o + rows.lowerBound * c, ldc: c)
        }
        if let residual {
            let r = residual + n * p * c
            if UnsafePointer(yn) != r { yn.update(from: r, count: p * c) }
            parallelLinear(o, rows: p, inFeatures: c, weight: wo, outFeatures: c, bias: bo, into: yn, accumulate: true)
        } else {
            parallelLinear(o, rows: p, inFeatures: c, weight: wo, outFeatures: c, bias: bo, into: yn)
        }
    }
}

extension DNNL {
    /// `y[i] = bf16Bits(x[i])` for `count` values by oneDNN reorders (f32 → bf16, round to nearest even), the range
    /// split over `Parallel.threads` workers. One reorder primitive per chunk length, created on first use under a
    /// lock and cached (a conv input has a handful of distinct sizes); memory objects wrap the pointers per call.
    public static func parallelRoundToBF16(_ x: UnsafePointer<Float>, count: Int, into y: UnsafeMutablePointer<UInt16>) {
        let workers = max(1, min(Parallel.threads, count / 4096))
        Parallel.run(workers) { w in
            let lo = count * w / workers, hi = count * (w + 1) / workers
            reorderToBF16(x + lo, count: hi - lo, into: y + lo)
        }
    }

    static func reorderToBF16(_ x: UnsafePointer<Float>, count: Int, into y: UnsafeMutablePointer<UInt16>) {
        if count == 0 { return }
        let ctx = ThreadContext.current
        let r = BF16Reorders.shared.reorder(count: count)
        var src: dnnl_memory_t?, dst: dnnl_memory_t?
        var sm = r.src, dm = r.dst
        var s = dnnl_memory_create(&src, &sm, engine, UnsafeMutableRawPointer(mutating: x))
        precondition(s == dnnl_success, "oneDNN: f32 → bf16 source memory (status \(s.rawValue))")
        s = dnnl_memory_create(&dst, &dm, engine, UnsafeMutableRawPointer(y))
        precondition(s == dnnl_success, "oneDNN: f32 → bf16 destination memory (status \(s.rawValue))")
        defer { dnnl_memory_destroy(src); dnnl_memory_destroy(dst) }
        var args = [dnnl_exec_arg_t(arg: MOE_DNNL_ARG_FROM, memory: src), dnnl_exec_arg_t(arg: MOE_DNNL_ARG_TO, memory: dst)]
        s = dnnl_primitive_execute(r.primitive, ctx.stream, 2, &args)
        precondition(s == dnnl_success, "oneDNN: f32 → bf16 reorder (status \(s.rawValue))")
        dnnl_stream_wait(ctx.stream)
    }
}

/// Cached f32 → bf16 reorder primitives of 1-D tensors, by length.
final class BF16Reorders: @unchecked Sendable {
    static let shared = BF16Reorders()
    struct Entry { let primitive: dnnl_primitive_t; let src: dnnl_memory_desc_t; let dst: dnnl_memory_desc_t }
    private let lock = NSLock()
    private var entries: [Int: Entry] = [:]

    func reorder(count: Int) -> Entry {
        lock.lock(); defer { lock.unlock() }
        if let e = entries[count] { return e }
        do {
            var src = dnnl_memory_desc_t(), dst = dnnl_memory_desc_t()
            var dims: [Int64] = [Int64(count)]
            try check(dnnl_memory_desc_init_by_tag(&src, 1, &dims, dnnl_f32, dnnl_a), "f32 vector descriptor")
            try check(dnnl_memory_desc_init_by_tag(&dst, 1, &dims, dnnl_bf16, dnnl_a), "bf16 vector descriptor")
            var pd: dnnl_primitive_desc_t?
            try check(dnnl_reorder_primitive_desc_create(&pd, &src, DNNL.engine, &dst, DNNL.engine, nil), "f32 → bf16 reorder")
            defer { dnnl_primitive_desc_destroy(pd) }
            var p: dnnl_primitive_t?
            try check(dnnl_primitive_create(&p, pd), "f32 → bf16 reorder primitive")
            let e = Entry(primitive: p!, src: src, dst: dst)
            entries[count] = e
            return e
        } catch {
            preconditionFailure("\(error)")
        }
    }
}
