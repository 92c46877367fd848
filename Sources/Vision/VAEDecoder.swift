import DiT
import Foundation
import Tensor

/// The AutoencoderKL decoder forward (diffusers `AutoencoderKL.decode`) on the Tensor kernels, channels-last inside.
///
/// Input: latents `[batch, latentChannels, h, w]` (NCHW) as a DiT produces them (scaled); `decode` divides by the
/// scaling factor the caller passes (0.18215 for sd-vae) before `post_quant_conv`. Output: the sample
/// `[batch, outChannels, H, W]` (NCHW), H = h·2^(levels−1) (8h for the 4-level sd-vae), nominally in [−1, 1];
/// `decodePixels` turns it into uint8 pixels (NCHW) by a `PixelQuantisation` rule.
///
/// Inside, every activation is NHWC (`[batch, pixels, channels]`), so each convolution is one pixel-major GEMM
/// `y[P, Cout] = col[P, kh·kw·Cin] · Wᵀ` per band of pixels (`conv2dChannelsLast`) with the weight as the B operand:
/// with oneDNN as `GEMMBackend.current` at init, every conv with ≥ 8 output channels is packed once here (FP32, or
/// BF16 with `precision: .bf16`, like the DiT's `linear` weights); the rest (`conv_out`, 3 channels, and
/// `post_quant_conv`, 4: a blocked layout would pad N to 64) and every conv under OpenBLAS run FP32 unpacked.
/// GroupNorm, SiLU, the attention (softmax and its four projections), the residual adds and the upsampling are FP32
/// in both precisions. The residual add of a resnet is fused into its second conv's GEMM (accumulate).
///
/// Buffers: three activation buffers of the largest activation of the network (at `maxBatch` images), the output of
/// the last conv, and per-worker convolution scratch; all allocated here, once. Larger batches are decoded in
/// chunks of `maxBatch`. Not thread-safe: one decode at a time per instance (it parallelises internally over
/// `Parallel.threads` workers). The instance keeps the GEMM backend it was built with (its weights are packed for it).
public final class VAEDecoder {
    public let weights: VAEDecoderWeights
    public let latentHeight: Int
    public let latentWidth: Int
    public let maxBatch: Int
    /// Arithmetic of the packed convolutions' GEMMs (BF16 inputs, FP32 accumulation, or FP32).
    public let precision: ComputePrecision
    /// Activation layout of the forward.
    public enum Layout: String, CaseIterable, Sendable {
        /// NHWC activations, pixel-major im2col, weights as the GEMM's packed B operand (the default: faster).
        case channelsLast = "nhwc"
        /// NCHW activations, `conv2d`'s channel-major im2col and `W[Cout, K]·col` GEMMs with plain weights (the
        /// previous implementation, kept to measure against; BF16 through `conv2d`'s BF16 weight copies).
        case nchw
    }
    public let layout: Layout
    public var config: VAEConfig { weights.config }
    public var outHeight: Int { latentHeight << (config.blockOutChannels.count - 1) }
    public var outWidth: Int { latentWidth << (config.blockOutChannels.count - 1) }
    /// Floats of one decoded image (`outChannels · outHeight · outWidth`).
    public var imageCount: Int { config.outChannels * outHeight * outWidth }

    private let a: FloatBuffer, b: FloatBuffer, c: FloatBuffer
    private let sampleBuffer: FloatBuffer
    private let convScratch: WorkerScratch
    private let attentionScratch: FloatBuffer
    /// Channels-last BF16: every conv input rounded once to BF16 (`conv2dChannelsLast`'s `bf16Input`).
    private let bf16Input: TypedBuffer<UInt16>?
    /// Every conv's permuted (and, on oneDNN, packed) weights, by the identity of its `ConvParameters.weight`
    /// (channels-last layout).
    private let convs: [ObjectIdentifier: ChannelsLastConvWeights]
    /// BF16 copies of the conv weights with ≥ 8 output channels (NCHW layout in BF16).
    private let bf16Weights: [ObjectIdentifier: TypedBuffer<UInt16>]

    /// `convScratchFloats`: per-worker im2col scratch; larger means fewer, bigger GEMM bands (see
    /// `conv2dChannelsLast`). The default of 1 Mi floats (4 MiB) per worker is raised when a conv needs more for one
    /// output pixel. `precision: .bf16` needs oneDNN as `GEMMBackend.current`.
    public init(weights: VAEDecoderWeights, latentHeight: Int, latentWidth: Int, maxBatch: Int = 1,
                convScratchFloats: Int = 1 << 20, precision: ComputePrecision = .fp32, layout: Layout = .channelsLast) {
        precondition(latentHeight > 0 && latentWidth > 0 && maxBatch > 0, "VAEDecoder: sizes must be positive")
        let pack = GEMMBackend.current == .onednn
        precondition(precision == .fp32 || pack, "VAEDecoder: BF16 needs the oneDNN GEMM backend")
        self.weights = weights
        self.latentHeight = latentHeight
        self.latentWidth = latentWidth
        self.maxBatch = maxBatch
        self.precision = precision
        self.layout = layout
        // Walk the network once to size the buffers and prepare every conv's weights.
        var largest = 0, scratch = convScratchFloats
        var convs: [ObjectIdentifier: ChannelsLastConvWeights] = [:]
        var bf16: [ObjectIdentifier: TypedBuffer<UInt16>] = [:]
        Self.walk(weights, h: latentHeight, w: latentWidth) { conv, h, w in
            largest = max(largest, conv.shape.inChannels * h * w)
            let o = conv.shape.outputSize(height: h, width: w)
            largest = max(largest, conv.shape.outChannels * o.height * o.width)
            scratch = max(scratch, layout == .nchw ? conv.shape.minimumScratchPerWorker(width: w)
                                                   : channelsLastConvMinimumScratch(conv.shape))
            let id = ObjectIdentifier(conv.weight)
            if layout == .nchw {
                if precision == .bf16 && conv.shape.outChannels >= 8 && bf16[id] == nil {
                    bf16[id] = bf16Copy(conv.weight.pointer, count: conv.shape.weightCount)
                }
            } else if convs[id] == nil {
                let packed = pack && conv.shape.outChannels >= 8
                do {
                    convs[id] = try ChannelsLastConvWeights(shape: conv.shape, weight: conv.weight.pointer, bias: conv.bias.pointer,
                                                            pack: packed, precision: packed ? precision : .fp32)
                } catch {
                    preconditionFailure("VAEDecoder: packing \(conv.shape) for oneDNN failed: \(error)")
                }
            }
        } upsample: { ch, h, w in largest = max(largest, ch * 4 * h * w) }
        self.convs = convs
        bf16Weights = bf16
        a = FloatBuffer(count: maxBatch * largest)
        b = FloatBuffer(count: maxBatch * largest)
        c = FloatBuffer(count: maxBatch * largest)
        bf16Input = precision == .bf16 && layout == .channelsLast ? TypedBuffer<UInt16>(count: maxBatch * largest, repeating: 0) : nil
        sampleBuffer = FloatBuffer(count: maxBatch * weights.config.outChannels * (latentHeight << (weights.config.blockOutChannels.count - 1))
                                   * (latentWidth << (weights.config.blockOutChannels.count - 1)))
        convScratch = WorkerScratch(workers: max(1, ProcessInfo.processInfo.activeProcessorCount), floatsPerWorker: scratch)
        let top = weights.config.blockOutChannels.last!
        attentionScratch = FloatBuffer(count: weights.midAttention == nil ? 1
                                       : spatialAttentionScratchCount(channels: top, pixels: latentHeight * latentWidth))
    }

    /// Visits every conv (with its input size) and upsampling (channels and input size) in forward order.
    private static func walk(_ wt: VAEDecoderWeights, h h0: Int, w w0: Int, conv: (ConvParameters, Int, Int) -> Void,
                             upsample: (Int, Int, Int) -> Void) {
        var h = h0, w = w0
        if let p = wt.postQuantConv { conv(p, h, w) }
        conv(wt.convIn, h, w)
        func resnet(_ r: ResnetParameters) { conv(r.conv1, h, w); conv(r.conv2, h, w); if let s = r.shortcut { conv(s, h, w) } }
        for r in wt.midResnets { resnet(r) }
        for blk in wt.upBlocks {
            for r in blk.resnets { resnet(r) }
            if let u = blk.upsampler { upsample(u.shape.inChannels, h, w); h *= 2; w *= 2; conv(u, h, w) }
        }
        conv(wt.convOut, h, w)
    }

    /// FLOPs of decoding one image: 2 × the multiply-adds of every convolution and of the attention's four
    /// projections and two P×P×C products (norms, activations and the softmax are not counted).
    public var flopsPerImage: Double {
        var macs = 0
        Self.walk(weights, h: latentHeight, w: latentWidth, conv: { c, h, w in macs += c.shape.macs(height: h, width: w) },
                  upsample: { _, _, _ in })
        if let at = weights.midAttention {
            let p = latentHeight * latentWidth, ch = at.channels
            macs += 4 * ch * ch * p + 2 * p * p * ch
        }
        return 2 * Double(macs)
    }

    /// `sample = decoder(post_quant_conv(latents / scalingFactor))`, `[batch, outChannels, outHeight, outWidth]`.
    public func decode(latents: UnsafePointer<Float>, batch: Int, scalingFactor: Float,
                       into sample: UnsafeMutablePointer<Float>) {
        let latentCount = config.latentChannels * latentHeight * latentWidth
        var done = 0
        while done < batch {
            let n = min(maxBatch, batch - done)
            run(latents + done * latentCount, batch: n, scalingFactor: scalingFactor, into: sample + done * imageCount)
            done += n
        }
    }

    /// Decodes and quantises: `pixels` is `[batch, outChannels, outHeight, outWidth]` uint8.
    public func decodePixels(latents: UnsafePointer<Float>, batch: Int, scalingFactor: Float,
                             quantisation: PixelQuantisation, into pixels: UnsafeMutablePointer<UInt8>) {
        let latentCount = config.latentChannels * latentHeight * latentWidth
        var done = 0
        while done < batch {
            let n = min(maxBatch, batch - done)
            run(latents + done * latentCount, batch: n, scalingFactor: scalingFactor, into: sampleBuffer.pointer)
            quantisation.quantise(sampleBuffer.pointer, count: n * imageCount, into: pixels + done * imageCount)
            done += n
        }
    }

    // MARK: Forward (one chunk of ≤ maxBatch images)

    private func run(_ latents: UnsafePointer<Float>, batch n: Int, scalingFactor: Float, into out: UnsafeMutablePointer<Float>) {
        if layout == .nchw {
            forwardNCHW(latents, batch: n, scalingFactor: scalingFactor, into: out)
        } else {
            forward(latents, batch: n, scalingFactor: scalingFactor, into: out)
        }
    }

    /// The channels-last forward.
    private func forward(_ latents: UnsafePointer<Float>, batch n: Int, scalingFactor: Float,
                         into out: UnsafeMutablePointer<Float>) {
        let cfg = config
        var h = latentHeight, w = latentWidth
        // NHWC activations; `a` holds the residual stream, `b` and `c` are scratch. Pointers rotate (a fused
        // shortcut leaves the result in another buffer).
        var a = a.pointer, b = b.pointer, c = c.pointer
        let groups = cfg.normGroups, eps = VAEConfig.groupNormEps
        func conv(_ p: ConvParameters, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
            conv2dChannelsLast(x, batch: n, height: h, width: w, weights: convs[ObjectIdentifier(p.weight)]!, into: y,
                               accumulate: accumulate, bf16Input: bf16Input?.pointer, scratch: convScratch)
        }
        func norm(_ p: NormParameters, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, silu: Bool) {
            groupNormChannelsLast(x, batch: n, pixels: h * w, channels: p.channels, groups: groups, eps: eps,
                                  weight: p.weight.pointer, bias: p.bias.pointer, silu: silu, into: y)
        }
        // Resnet on the activation in `a`, result back in `a`. No norm runs in place: with distinct source and
        // destination the compiler's vectorised loop runs (its runtime overlap check sends x == y to a scalar loop,
        // measured 3× slower for the affine + SiLU pass).
        func resnet(_ r: ResnetParameters) {
            norm(r.norm1, a, c, silu: true)
            conv(r.conv1, c, b)
            norm(r.norm2, b, c, silu: true)
            if let s = r.shortcut {
                conv(r.conv2, c, b)
                conv(s, a, b, accumulate: true)  // b = conv2 + shortcut(a)
                swap(&a, &b)
            } else {
                conv(r.conv2, c, a, accumulate: true)  // a += conv2
            }
        }

        // latents / scalingFactor → b (NHWC), then post_quant_conv → c (or straight to conv_in).
        nchwToNHWC(latents, batch: n, channels: cfg.latentChannels, pixels: h * w, scale: 1 / scalingFactor, into: b)
        if let p = weights.postQuantConv {
            conv(p, b, c)
            conv(weights.convIn, c, a)
        } else {
            conv(weights.convIn, b, a)
        }
        resnet(weights.midResnets[0])
        if let at = weights.midAttention {
            norm(at.norm, a, b, silu: false)
            spatialSelfAttentionChannelsLast(b, batch: n, channels: at.channels, pixels: h * w,
                                             wq: at.q.weight.pointer, bq: at.q.bias.pointer, wk: at.k.weight.pointer,
                                             bk: at.k.bias.pointer, wv: at.v.weight.pointer, bv: at.v.bias.pointer,
                                             wo: at.out.weight.pointer, bo: at.out.bias.pointer,
                                             residual: a, into: a, scratch: attentionScratch.pointer)
        }
        resnet(weights.midResnets[1])
        for blk in weights.upBlocks {
            for r in blk.resnets { resnet(r) }
            if let u = blk.upsampler {
                upsampleNearest2xChannelsLast(a, batch: n, height: h, width: w, channels: u.shape.inChannels, into: b)
                h *= 2; w *= 2
                conv(u, b, a)
            }
        }
        norm(weights.normOut, a, b, silu: true)
        conv(weights.convOut, b, c)
        nhwcToNCHW(c, batch: n, channels: cfg.outChannels, pixels: h * w, into: out)
    }

    /// The NCHW forward (`Layout.nchw`): per-conv NCHW im2col + `W·col` GEMMs (`conv2d`), FP32 or BF16 weights.
    private func forwardNCHW(_ latents: UnsafePointer<Float>, batch n: Int, scalingFactor: Float,
                             into out: UnsafeMutablePointer<Float>) {
        let cfg = config
        var h = latentHeight, w = latentWidth
        let a = a.pointer, b = b.pointer, c = c.pointer
        let groups = cfg.normGroups, eps = VAEConfig.groupNormEps
        func conv(_ p: ConvParameters, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
            conv2d(x, batch: n, height: h, width: w, shape: p.shape, weight: p.weight.pointer, bias: p.bias.pointer,
                   into: y, bf16Weight: bf16Weights[ObjectIdentifier(p.weight)]?.pointer, scratch: convScratch)
        }
        func norm(_ p: NormParameters, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, silu: Bool) {
            groupNorm(x, batch: n, channels: p.channels, pixels: h * w, groups: groups, eps: eps,
                      weight: p.weight.pointer, bias: p.bias.pointer, silu: silu, into: y)
        }
        // Resnet on the activation in `a`, result back in `a`; `b` and `c` are scratch.
        func resnet(_ r: ResnetParameters) {
            norm(r.norm1, a, c, silu: true)
            conv(r.conv1, c, b)
            norm(r.norm2, b, b, silu: true)
            conv(r.conv2, b, c)
            let count = n * r.outChannels * h * w
            if let s = r.shortcut {
                conv(s, a, b)
                for i in 0..<count { a[i] = b[i] + c[i] }
            } else {
                for i in 0..<count { a[i] += c[i] }
            }
        }

        // latents / scalingFactor → b, then post_quant_conv → c (or straight to conv_in).
        let latentCount = n * cfg.latentChannels * h * w
        let inv = 1 / scalingFactor
        for i in 0..<latentCount { b[i] = latents[i] * inv }
        if let p = weights.postQuantConv {
            conv(p, b, c)
            conv(weights.convIn, c, a)
        } else {
            conv(weights.convIn, b, a)
        }
        resnet(weights.midResnets[0])
        if let at = weights.midAttention {
            norm(at.norm, a, b, silu: false)
            spatialSelfAttention(b, batch: n, channels: at.channels, pixels: h * w,
                                 wq: at.q.weight.pointer, bq: at.q.bias.pointer, wk: at.k.weight.pointer, bk: at.k.bias.pointer,
                                 wv: at.v.weight.pointer, bv: at.v.bias.pointer, wo: at.out.weight.pointer, bo: at.out.bias.pointer,
                                 residual: a, into: a, scratch: attentionScratch.pointer)
        }
        resnet(weights.midResnets[1])
        for blk in weights.upBlocks {
            for r in blk.resnets { resnet(r) }
            if let u = blk.upsampler {
                upsampleNearest2x(a, planes: n * u.shape.inChannels, height: h, width: w, into: b)
                h *= 2; w *= 2
                conv(u, b, a)
            }
        }
        norm(weights.normOut, a, b, silu: true)
        conv(weights.convOut, b, out)
    }
}
