import CDNNL

/// 2-D convolution on NCHW Float32 tensors (PyTorch `nn.Conv2d`, groups = 1, dilation = 1), as im2col + the one
/// GEMM entry point (`gemm`, so it runs on `GEMMBackend.current`).
///
/// Layouts (row-major, contiguous):
/// - input `x`: `[batch, inChannels, height, width]`;
/// - weight: `[outChannels, inChannels, kernelH, kernelW]` as PyTorch stores it, read as the matrix
///   `W[outChannels, K]` with `K = inChannels·kernelH·kernelW` (row index `(ci·kernelH + ky)·kernelW + kx`);
/// - output `y`: `[batch, outChannels, outH, outW]`, `outH = (height + 2·padH − kernelH) / strideH + 1`.
///
/// Each image is cut into bands of whole output rows. For a band of `P = rows·outW` output pixels the worker writes
/// the column matrix `col[K, P]` (zero where the kernel reads padding) into its scratch and computes
/// `out[outChannels, P] = W · col` in one GEMM with dense operands (oneDNN's fast kernels need dense ones); the band
/// result then goes to `y` with the bias added. Bands of all images are shared out over `Parallel.threads` workers.
public struct Conv2DShape: Hashable, Sendable, CustomStringConvertible {
    public let inChannels: Int
    public let outChannels: Int
    public let kernelH: Int
    public let kernelW: Int
    public let strideH: Int
    public let strideW: Int
    public let padH: Int
    public let padW: Int

    public init(inChannels: Int, outChannels: Int, kernel: (Int, Int), stride: (Int, Int) = (1, 1),
                padding: (Int, Int) = (0, 0)) {
        precondition(inChannels > 0 && outChannels > 0 && kernel.0 > 0 && kernel.1 > 0 && stride.0 > 0 && stride.1 > 0
                     && padding.0 >= 0 && padding.1 >= 0, "Conv2DShape: bad sizes")
        self.inChannels = inChannels; self.outChannels = outChannels
        kernelH = kernel.0; kernelW = kernel.1
        strideH = stride.0; strideW = stride.1
        padH = padding.0; padW = padding.1
    }

    /// A square `k×k` kernel with equal stride and padding on both axes.
    public init(inChannels: Int, outChannels: Int, kernel k: Int, stride s: Int = 1, padding p: Int = 0) {
        self.init(inChannels: inChannels, outChannels: outChannels, kernel: (k, k), stride: (s, s), padding: (p, p))
    }

    /// Rows of the im2col matrix (`inChannels·kernelH·kernelW`): the GEMM's inner dimension.
    public var columnRows: Int { inChannels * kernelH * kernelW }
    public var weightCount: Int { outChannels * columnRows }
    public var weightShape: [Int] { [outChannels, inChannels, kernelH, kernelW] }

    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        ((height + 2 * padH - kernelH) / strideH + 1, (width + 2 * padW - kernelW) / strideW + 1)
    }

    /// Floats of scratch one worker needs to convolve at least one output row of an image `width` wide; more
    /// scratch gives bigger bands (fewer, larger GEMMs).
    public func minimumScratchPerWorker(width: Int) -> Int {
        let ow = outputSize(height: kernelH, width: width).width
        return (columnRows + outChannels) * ow
    }

    /// Multiply-adds of one image `height × width` (FLOPs are twice this).
    public func macs(height: Int, width: Int) -> Int {
        let o = outputSize(height: height, width: width)
        return outChannels * columnRows * o.height * o.width
    }

    public var description: String {
        "conv \(inChannels)→\(outChannels) \(kernelH)×\(kernelW) stride \(strideH)×\(strideW) pad \(padH)×\(padW)"
    }
}

/// Per-worker scratch of the convolutions (and of anything else that takes a `WorkerScratch`): `workers` blocks of
/// `floatsPerWorker` floats, allocated once; worker `w` only touches block `w`.
public final class WorkerScratch: @unchecked Sendable {
    public let workers: Int
    public let floatsPerWorker: Int
    private let storage: FloatBuffer

    public init(workers: Int, floatsPerWorker: Int) {
        precondition(workers > 0 && floatsPerWorker > 0, "WorkerScratch: workers and floatsPerWorker must be positive")
        self.workers = workers
        self.floatsPerWorker = floatsPerWorker
        storage = FloatBuffer(count: workers * floatsPerWorker)
    }

    @inlinable public func block(_ worker: Int) -> UnsafeMutablePointer<Float> {
        precondition(worker < workers, "WorkerScratch: worker \(worker) of \(workers)")
        return base + worker * floatsPerWorker
    }

    public var base: UnsafeMutablePointer<Float> { storage.pointer }
}

/// `y = conv2d(x, weight) + bias`, then `max(·, 0)` with `relu` (see `Conv2DShape` for layouts). `scratch` needs
/// at least `min(Parallel.threads, bands)` workers of `shape.minimumScratchPerWorker(width:)` floats each; `x` and
/// `y` must not overlap.
///
/// `outImageStride` (default `outChannels·outH·outW`): floats from one image's output to the next, so a conv can
/// write its channels into a slice of a wider NCHW tensor (a channel concatenation): pass `y` at the slice's first
/// channel and the wide tensor's image size. One image's `[outChannels, outH, outW]` block is always contiguous.
///
/// `bf16Weight`: the same `[outChannels, K]` weight rounded to BF16 (`bf16Bits`, made once by the caller). When
/// given (oneDNN only), im2col writes the columns as BF16 (round to nearest even) and the GEMM multiplies BF16 with
/// FP32 accumulation (`DNNL.gemmBF16`); bias, ReLU and the output stay FP32. `weight` is then not read.
public func conv2d(_ x: UnsafePointer<Float>, batch: Int, height: Int, width: Int, shape: Conv2DShape,
                   weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>,
                   outImageStride: Int? = nil, relu: Bool = false, bf16Weight: UnsafePointer<UInt16>? = nil,
                   scratch: WorkerScratch) {
    precondition(bf16Weight == nil || GEMMBackend.current == .onednn, "conv2d: BF16 weights need the oneDNN GEMM backend")
    let (oh, ow) = shape.outputSize(height: height, width: width)
    precondition(oh > 0 && ow > 0, "conv2d: \(shape) on \(height)×\(width) gives an empty output")
    let k = shape.columnRows, cout = shape.outChannels
    let perRow = (k + cout) * ow
    precondition(scratch.floatsPerWorker >= perRow,
                 "conv2d: \(shape) on \(height)×\(width) needs \(perRow) scratch floats per worker, has \(scratch.floatsPerWorker)")
    let bandRows = min(oh, scratch.floatsPerWorker / perRow)
    let bandsPerImage = (oh + bandRows - 1) / bandRows
    let inImage = shape.inChannels * height * width, outImage = outImageStride ?? cout * oh * ow
    precondition(outImage >= cout * oh * ow, "conv2d: outImageStride \(outImage) < one image's \(cout * oh * ow) outputs")
    let workers = min(Parallel.threads, scratch.workers)
    let total = batch * bandsPerImage
    let run: (Int, Range<Int>) -> Void = { worker, bands in
        let col = scratch.block(worker)
        let out = col + k * bandRows * ow
        for band in bands {
            let n = band / bandsPerImage
            let oy0 = (band % bandsPerImage) * bandRows
            let rows = min(bandRows, oh - oy0)
            let pixels = rows * ow
            let yImage = y + n * outImage
            if let bw = bf16Weight {
                // BF16 columns in the first half of the column area; FP32 GEMM output in `out`.
                col.withMemoryRebound(to: UInt16.self, capacity: k * pixels) { colB in
                    im2col(x + n * inImage, height: height, width: width, shape: shape, outWidth: ow,
                           rows: oy0..<(oy0 + rows), into: colB, convert: bf16Bits, zero: 0)
                    DNNL.gemmBF16(m: cout, n: pixels, k: k, a: bw, b: colB, c: out)
                }
                storeBand(out, channels: cout, pixels: pixels, into: yImage + oy0 * ow, imageStride: oh * ow,
                          bias: bias, relu: relu)
                continue
            }
            im2col(x + n * inImage, height: height, width: width, shape: shape, outWidth: ow,
                   rows: oy0..<(oy0 + rows), into: col)
            if rows == oh {
                // The band is the whole image: the GEMM writes the output in place (dense, ldc = pixels).
                gemm(transB: false, m: cout, n: pixels, k: k, a: weight, lda: k, b: col, ldb: pixels,
                     c: yImage, ldc: pixels)
                if let bias { for c in 0..<cout { addScalar(yImage + c * pixels, bias[c], count: pixels) } }
                if relu { for i in 0..<(cout * pixels) { yImage[i] = max(yImage[i], 0) } }
            } else {
                gemm(transB: false, m: cout, n: pixels, k: k, a: weight, lda: k, b: col, ldb: pixels,
                     c: out, ldc: pixels)
                storeBand(out, channels: cout, pixels: pixels, into: yImage + oy0 * ow, imageStride: oh * ow,
                          bias: bias, relu: relu)
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

@inlinable @inline(__always)
func addScalar(_ p: UnsafeMutablePointer<Float>, _ v: Float, count: Int) {
    if v == 0 { return }
    for i in 0..<count { p[i] += v }
}

/// The im2col matrix of output rows `rows` of one image: `col[(ci·kernelH + ky)·kernelW + kx, (oy − rows.lower)·outW
/// + ox] = x[ci, oy·strideH − padH + ky, ox·strideW − padW + kx]`, 0 where that index is outside the image.
/// `col` is dense with leading dimension `rows.count·outWidth`.
@inlinable
public func im2col(_ x: UnsafePointer<Float>, height: Int, width: Int, shape s: Conv2DShape, outWidth ow: Int,
                   rows: Range<Int>, into col: UnsafeMutablePointer<Float>) {
    im2col(x, height: height, width: width, shape: s, outWidth: ow, rows: rows, into: col, convert: { $0 }, zero: 0)
}

/// `im2col` with each value passed through `convert` (e.g. `bf16Bits`) and `zero` in the padding.
@inlinable
public func im2col<T>(_ x: UnsafePointer<Float>, height: Int, width: Int, shape s: Conv2DShape, outWidth ow: Int,
                      rows: Range<Int>, into col: UnsafeMutablePointer<T>, convert: (Float) -> T, zero: T) {
    let ld = rows.count * ow
    for ci in 0..<s.inChannels {
        let plane = x + ci * height * width
        for ky in 0..<s.kernelH {
            for kx in 0..<s.kernelW {
                let r = col + ((ci * s.kernelH + ky) * s.kernelW + kx) * ld
                // Output columns whose input column ix = ox·strideW − padW + kx lies in [0, width).
                let lo = min(ow, max(0, (s.padW - kx + s.strideW - 1) / s.strideW))
                let hiIncl = (width - 1 + s.padW - kx)
                let hi = hiIncl < 0 ? 0 : min(ow, hiIncl / s.strideW + 1)
                for (i, oy) in rows.enumerated() {
                    let dst = r + i * ow
                    let iy = oy * s.strideH - s.padH + ky
                    if iy < 0 || iy >= height || hi <= lo {
                        dst.update(repeating: zero, count: ow)
                        continue
                    }
                    if lo > 0 { dst.update(repeating: zero, count: lo) }
                    let src = plane + iy * width + (lo * s.strideW - s.padW + kx)
                    if s.strideW == 1 && T.self == Float.self {
                        UnsafeMutableRawPointer(dst + lo).copyMemory(from: src, byteCount: (hi - lo) * 4)
                    } else if s.strideW == 1 {
                        for j in 0..<(hi - lo) { dst[lo + j] = convert(src[j]) }
                    } else {
                        for j in 0..<(hi - lo) { dst[lo + j] = convert(src[j * s.strideW]) }
                    }
                    if hi < ow { dst.advanced(by: hi).update(repeating: zero, count: ow - hi) }
                }
            }
        }
    }
}

extension DNNL {
    /// `c[m, n] = a[m, k] · b[k, n]` with `a` and `b` BF16 bit patterns, dense row-major (lda = k, ldb = ldc = n),
    /// FP32 accumulation and FP32 `c`: the GEMM of a BF16 `conv2d`, whose weight is the A operand (oneDNN's matmul
    /// packs only B, so the weight is plain BF16, rounded once by the caller). A cached primitive per shape, like
    /// `sgemm`; oneDNN 2.6 picks `brg:avx512_core_bf16` for these dense operands.
    @usableFromInline
    static func gemmBF16(m: Int, n: Int, k: Int, a: UnsafePointer<UInt16>, b: UnsafePointer<UInt16>,
                         c: UnsafeMutablePointer<Float>) {
        let ctx = ThreadContext.current
        let key = MatmulKey(m: m, n: n, k: k, lda: k, ldb: n, ldc: n, transA: false, transB: false, alpha: 1,
                            accumulate: false, srcType: dnnl_bf16.rawValue, packedWeights: false, ompThreads: ctx.ompThreads)
        let e = ctx.entry(key, packedLayoutOf: nil)
        e.run(src: UnsafeRawPointer(a), weights: UnsafeRawPointer(b), packed: nil, dst: c, scratch: ctx)
    }
}

/// `count` FP32 values rounded to BF16 bit patterns (`bf16Bits`, nearest even): the BF16 copy of a conv weight.
public func bf16Copy(_ x: UnsafePointer<Float>, count: Int) -> TypedBuffer<UInt16> {
    let out = TypedBuffer<UInt16>(count: count, repeating: 0)
    for i in 0..<count { out.pointer[i] = bf16Bits(x[i]) }
    return out
}

/// Copies a band's GEMM output `[channels, pixels]` (dense) into the band's rows of an NCHW image whose channel planes
/// are `imageStride` floats apart, adding the per-channel bias and applying ReLU when asked.
func storeBand(_ band: UnsafePointer<Float>, channels: Int, pixels: Int, into dst: UnsafeMutablePointer<Float>,
               imageStride: Int, bias: UnsafePointer<Float>?, relu: Bool) {
    for c in 0..<channels {
        let d = dst + c * imageStride, src = band + c * pixels
        let b = bias?[c] ?? 0
        if relu {
            for i in 0..<pixels { d[i] = max(src[i] + b, 0) }
        } else {
            for i in 0..<pixels { d[i] = src[i] + b }
        }
    }
}
