import DiT
import Foundation
import Tensor

/// The AutoencoderKL decoder forward (diffusers `AutoencoderKL.decode`), NCHW Float32, on the Tensor kernels.
///
/// Input: latents `[batch, latentChannels, h, w]` as a DiT produces them (scaled); `decode` divides by the
/// scaling factor the caller passes (0.18215 for sd-vae) before `post_quant_conv`. Output: the sample
/// `[batch, outChannels, H, W]`, H = h·2^(levels−1) (8h for the 4-level sd-vae), nominally in [−1, 1];
/// `decodePixels` turns it into uint8 pixels (NCHW) by a `PixelQuantisation` rule.
///
/// Buffers: three activation buffers of the largest activation of the network (at `maxBatch` images), the output of
/// the last conv, and per-worker convolution scratch; all allocated here, once. Larger batches are decoded in
/// chunks of `maxBatch`. Not thread-safe: one decode at a time per instance (it parallelises internally over
/// `Parallel.threads` workers).
public final class VAEDecoder {
    public let weights: VAEDecoderWeights
    public let latentHeight: Int
    public let latentWidth: Int
    public let maxBatch: Int
    public var config: VAEConfig { weights.config }
    public var outHeight: Int { latentHeight << (config.blockOutChannels.count - 1) }
    public var outWidth: Int { latentWidth << (config.blockOutChannels.count - 1) }
    /// Floats of one decoded image (`outChannels · outHeight · outWidth`).
    public var imageCount: Int { config.outChannels * outHeight * outWidth }

    private let a: FloatBuffer, b: FloatBuffer, c: FloatBuffer
    private let sampleBuffer: FloatBuffer
    private let convScratch: WorkerScratch
    private let attentionScratch: FloatBuffer

    /// `convScratchFloats`: per-worker im2col scratch; larger means fewer, bigger GEMM bands (see `conv2d`). The
    /// default of 2 Mi floats (8 MiB) per worker is raised when a conv needs more for one output row.
    public init(weights: VAEDecoderWeights, latentHeight: Int, latentWidth: Int, maxBatch: Int = 1,
                convScratchFloats: Int = 1 << 21) {
        precondition(latentHeight > 0 && latentWidth > 0 && maxBatch > 0, "VAEDecoder: sizes must be positive")
        self.weights = weights
        self.latentHeight = latentHeight
        self.latentWidth = latentWidth
        self.maxBatch = maxBatch
        // Walk the network once to size the buffers.
        var largest = 0, scratch = convScratchFloats
        Self.walk(weights, h: latentHeight, w: latentWidth) { conv, h, w in
            largest = max(largest, conv.shape.inChannels * h * w)
            let o = conv.shape.outputSize(height: h, width: w)
            largest = max(largest, conv.shape.outChannels * o.height * o.width)
            scratch = max(scratch, conv.shape.minimumScratchPerWorker(width: w))
        } upsample: { ch, h, w in largest = max(largest, ch * 4 * h * w) }
        a = FloatBuffer(count: maxBatch * largest)
        b = FloatBuffer(count: maxBatch * largest)
        c = FloatBuffer(count: maxBatch * largest)
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
            forward(latents + done * latentCount, batch: n, scalingFactor: scalingFactor, into: sample + done * imageCount)
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
            forward(latents + done * latentCount, batch: n, scalingFactor: scalingFactor, into: sampleBuffer.pointer)
            quantisation.quantise(sampleBuffer.pointer, count: n * imageCount, into: pixels + done * imageCount)
            done += n
        }
    }

    // MARK: Forward (one chunk of ≤ maxBatch images)

    private func forward(_ latents: UnsafePointer<Float>, batch n: Int, scalingFactor: Float,
                         into out: UnsafeMutablePointer<Float>) {
        let cfg = config
        var h = latentHeight, w = latentWidth
        let a = a.pointer, b = b.pointer, c = c.pointer
        let groups = cfg.normGroups, eps = VAEConfig.groupNormEps
        func conv(_ p: ConvParameters, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
            conv2d(x, batch: n, height: h, width: w, shape: p.shape, weight: p.weight.pointer, bias: p.bias.pointer,
                   into: y, scratch: convScratch)
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
