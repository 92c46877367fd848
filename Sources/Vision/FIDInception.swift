import Foundation
import Tensor

/// pytorch-fid's `InceptionV3([3])` forward: the 2048-d pool3 features FID is computed from.
///
/// Input: images `[batch, 3, H, W]` NCHW in [0, 1] (uint8 pixels / 255, which `features(pixels:)` does), any H×W.
/// Steps, as pytorch-fid: bilinear resize to 299×299 (align_corners=False, no antialias), x ↦ 2x − 1, the
/// Inception-v3 stem and the eleven mixed blocks with pytorch-fid's FID patches (average pools in Mixed_5b–5d,
/// 6b–6e and 7b exclude the zero padding from the count; Mixed_7c's pool branch is a max pool), then the mean over
/// the final 8×8 map. Output: `[batch, 2048]`, each feature ≥ 0 (a mean of ReLU outputs).
///
/// Buffers (the resized input, four activation buffers of the largest activation — 64×147×147 after Conv2d_2b — at
/// `maxBatch` images, the uint8 conversion buffer, conv scratch) are allocated once here; larger batches run in
/// chunks. One call at a time per instance; it parallelises internally over `Parallel.threads` workers.
public final class FIDInception {
    public static let inputSize = 299
    public static let featureCount = 2048

    public let weights: FIDInceptionWeights
    public let imageHeight: Int
    public let imageWidth: Int
    public let maxBatch: Int
    private let input: FloatBuffer, resized: FloatBuffer
    private let x: FloatBuffer, y: FloatBuffer, t1: FloatBuffer, t2: FloatBuffer
    private let convScratch: WorkerScratch
    private let stemSizes: [Int]
    /// Arithmetic of the convolutions' GEMMs: BF16 inputs (weights rounded once here, im2col columns rounded as they
    /// are written) with FP32 accumulation, or FP32. Bias, ReLU, pools, resize and the pool3 mean are FP32 in both.
    public let precision: ComputePrecision
    /// BF16 copies of every conv weight (`[Cout, K]`), by the identity of its FP32 buffer; empty in FP32.
    private let bf16Weights: [ObjectIdentifier: TypedBuffer<UInt16>]

    /// `imageHeight × imageWidth`: the size `features(pixels:)` takes (the float entry point takes the same).
    /// `precision: .bf16` needs oneDNN as `GEMMBackend.current` (OpenBLAS has no BF16 GEMM here).
    public init(weights: FIDInceptionWeights, imageHeight: Int, imageWidth: Int, maxBatch: Int = 1,
                convScratchFloats: Int = 1 << 21, precision: ComputePrecision = .fp32) {
        precondition(imageHeight > 0 && imageWidth > 0 && maxBatch > 0, "FIDInception: sizes must be positive")
        precondition(precision == .fp32 || GEMMBackend.current == .onednn, "FIDInception: BF16 needs the oneDNN GEMM backend")
        self.precision = precision
        var bf16: [ObjectIdentifier: TypedBuffer<UInt16>] = [:]
        if precision == .bf16 {
            for c in weights.stem + weights.blocks.flatMap({ $0.convs.values }) {
                bf16[ObjectIdentifier(c.weight)] = bf16Copy(c.weight.pointer, count: c.shape.weightCount)
            }
        }
        bf16Weights = bf16
        self.weights = weights
        self.imageHeight = imageHeight
        self.imageWidth = imageWidth
        self.maxBatch = maxBatch
        // Spatial sizes through the stem: 299 → 149 → 147 → 147 → 73 (max) → 73 → 71 → 35 (max).
        var s = [Self.inputSize], largest = 3 * Self.inputSize * Self.inputSize, scratch = convScratchFloats
        for (i, c) in weights.stem.enumerated() {
            let side = c.shape.outputSize(height: s.last!, width: s.last!).height
            scratch = max(scratch, c.shape.minimumScratchPerWorker(width: s.last!))
            s.append(side)
            largest = max(largest, c.shape.outChannels * side * side)
            if i == 2 || i == 4 { s.append(pooledSize(side, kernel: 3, stride: 2, padding: 0)) }
        }
        stemSizes = s
        var side = s.last!
        for blk in weights.blocks {
            largest = max(largest, blk.inChannels * side * side)
            for c in blk.convs.values { scratch = max(scratch, c.shape.minimumScratchPerWorker(width: side)) }
            if blk.kind == .b || blk.kind == .d { side = pooledSize(side, kernel: 3, stride: 2, padding: 0) }
            largest = max(largest, blk.outChannels * side * side)
        }
        input = FloatBuffer(count: maxBatch * 3 * imageHeight * imageWidth)
        resized = FloatBuffer(count: maxBatch * 3 * Self.inputSize * Self.inputSize)
        x = FloatBuffer(count: maxBatch * largest); y = FloatBuffer(count: maxBatch * largest)
        t1 = FloatBuffer(count: maxBatch * largest); t2 = FloatBuffer(count: maxBatch * largest)
        convScratch = WorkerScratch(workers: max(1, ProcessInfo.processInfo.activeProcessorCount), floatsPerWorker: scratch)
    }

    /// Pool3 features of `batch` images in [0, 1], `[batch, 3, imageHeight, imageWidth]` → `[batch, 2048]`.
    public func features(images: UnsafePointer<Float>, batch: Int, into out: UnsafeMutablePointer<Float>) {
        let per = 3 * imageHeight * imageWidth
        var done = 0
        while done < batch {
            let n = min(maxBatch, batch - done)
            forward(images + done * per, batch: n, into: out + done * Self.featureCount)
            done += n
        }
    }

    /// Pool3 features of uint8 images `[batch, 3, imageHeight, imageWidth]` (value / 255 is the network's input,
    /// as pytorch-fid reads image files).
    public func features(pixels: UnsafePointer<UInt8>, batch: Int, into out: UnsafeMutablePointer<Float>) {
        let per = 3 * imageHeight * imageWidth
        var done = 0
        while done < batch {
            let n = min(maxBatch, batch - done)
            let p = pixels + done * per
            for i in 0..<(n * per) { input.pointer[i] = Float(p[i]) / 255 }
            forward(input.pointer, batch: n, into: out + done * Self.featureCount)
            done += n
        }
    }

    /// FLOPs of one image: 2 × the multiply-adds of every convolution (pools, resize and ReLU not counted).
    public var flopsPerImage: Double {
        var macs = 0
        var side = Self.inputSize
        for (i, c) in weights.stem.enumerated() {
            macs += c.shape.macs(height: side, width: side)
            side = c.shape.outputSize(height: side, width: side).height
            if i == 2 || i == 4 { side = pooledSize(side, kernel: 3, stride: 2, padding: 0) }
        }
        for blk in weights.blocks {
            // Every conv of a block reads a map of the block's input size (B and D stride only in a branch's last conv).
            for c in blk.convs.values { macs += c.shape.macs(height: side, width: side) }
            if blk.kind == .b || blk.kind == .d { side = pooledSize(side, kernel: 3, stride: 2, padding: 0) }
        }
        return 2 * Double(macs)
    }

    // MARK: Forward (one chunk)

    private func forward(_ images: UnsafePointer<Float>, batch n: Int, into out: UnsafeMutablePointer<Float>) {
        let r = resized.pointer
        let side0 = Self.inputSize
        resizeBilinear(images, planes: n * 3, height: imageHeight, width: imageWidth, outHeight: side0, outWidth: side0, into: r)
        for i in 0..<(n * 3 * side0 * side0) { r[i] = 2 * r[i] - 1 }

        var side = side0
        func conv(_ c: FoldedConv, _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ stride: Int? = nil) {
            conv2d(src, batch: n, height: side, width: side, shape: c.shape, weight: c.weight.pointer, bias: c.bias.pointer,
                   into: dst, outImageStride: stride, relu: true, bf16Weight: bf16Weights[ObjectIdentifier(c.weight)]?.pointer,
                   scratch: convScratch)
        }
        // Stem.
        let st = weights.stem
        let a = t1.pointer, b = t2.pointer
        conv(st[0], r, a); side = stemSizes[1]
        conv(st[1], a, b); side = stemSizes[2]
        conv(st[2], b, a); side = stemSizes[3]
        maxPool2d(a, planes: n * 64, height: side, width: side, kernel: 3, stride: 2, into: b); side = stemSizes[4]
        conv(st[3], b, a); side = stemSizes[5]
        conv(st[4], a, b); side = stemSizes[6]
        var xp = x.pointer, yp = y.pointer
        maxPool2d(b, planes: n * 192, height: side, width: side, kernel: 3, stride: 2, into: xp); side = stemSizes[7]

        for blk in weights.blocks {
            let next = mixed(blk, xp, yp, n: n, side: side, conv: conv)
            side = next
            swap(&xp, &yp)
        }
        // pool3: mean over the final side×side map.
        let hw = side * side
        for i in 0..<n {
            for ch in 0..<Self.featureCount {
                out[i * Self.featureCount + ch] = sum(xp + (i * Self.featureCount + ch) * hw, count: hw) / Float(hw)
            }
        }
    }

    /// One mixed block: reads `[n, inChannels, side, side]` from `src`, writes the channel concatenation of its
    /// branches (in torchvision's order) to `dst`; returns the output side. `conv` runs a folded conv + ReLU at the
    /// block's input size `side`.
    private func mixed(_ blk: FIDInceptionWeights.InceptionBlock, _ src: UnsafeMutablePointer<Float>,
                       _ dst: UnsafeMutablePointer<Float>, n: Int, side: Int,
                       conv: (FoldedConv, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int?) -> Void) -> Int {
        let c = blk.convs, t1 = t1.pointer, t2 = t2.pointer
        let cin = blk.inChannels, hw = side * side
        let stride2 = blk.kind == .b || blk.kind == .d
        let os = stride2 ? pooledSize(side, kernel: 3, stride: 2, padding: 0) : side
        let ohw = os * os, image = blk.outChannels * ohw
        var offset = 0
        // A branch's last conv writes channels [offset, offset + out) of every image of dst.
        func final(_ name: String, _ from: UnsafePointer<Float>) {
            let cv = c[name]!
            conv(cv, from, dst + offset * ohw, image)
            offset += cv.shape.outChannels
        }
        func avgPoolNoPad(_ from: UnsafePointer<Float>, _ to: UnsafeMutablePointer<Float>) {
            avgPool2d(from, planes: n * cin, height: side, width: side, kernel: 3, stride: 1, padding: 1, countIncludePad: false, into: to)
        }
        switch blk.kind {
        case .a:
            final("branch1x1", src)
            conv(c["branch5x5_1"]!, src, t1, nil); final("branch5x5_2", t1)
            conv(c["branch3x3dbl_1"]!, src, t1, nil); conv(c["branch3x3dbl_2"]!, t1, t2, nil); final("branch3x3dbl_3", t2)
            avgPoolNoPad(src, t1); final("branch_pool", t1)
        case .c:
            final("branch1x1", src)
            conv(c["branch7x7_1"]!, src, t1, nil); conv(c["branch7x7_2"]!, t1, t2, nil); final("branch7x7_3", t2)
            conv(c["branch7x7dbl_1"]!, src, t1, nil); conv(c["branch7x7dbl_2"]!, t1, t2, nil)
            conv(c["branch7x7dbl_3"]!, t2, t1, nil); conv(c["branch7x7dbl_4"]!, t1, t2, nil); final("branch7x7dbl_5", t2)
            avgPoolNoPad(src, t1); final("branch_pool", t1)
        case .eAvg, .eMax:
            final("branch1x1", src)
            conv(c["branch3x3_1"]!, src, t1, nil); final("branch3x3_2a", t1); final("branch3x3_2b", t1)
            conv(c["branch3x3dbl_1"]!, src, t1, nil); conv(c["branch3x3dbl_2"]!, t1, t2, nil)
            final("branch3x3dbl_3a", t2); final("branch3x3dbl_3b", t2)
            if blk.kind == .eAvg {
                avgPoolNoPad(src, t1)
            } else {
                maxPool2d(src, planes: n * cin, height: side, width: side, kernel: 3, stride: 1, padding: 1, into: t1)
            }
            final("branch_pool", t1)
        case .b, .d:
            // The stride-2 convs run at the input size; their outputs (and the max pool's) are os × os.
            if blk.kind == .b {
                final("branch3x3", src)
                conv(c["branch3x3dbl_1"]!, src, t1, nil); conv(c["branch3x3dbl_2"]!, t1, t2, nil); final("branch3x3dbl_3", t2)
            } else {
                conv(c["branch3x3_1"]!, src, t1, nil); final("branch3x3_2", t1)
                conv(c["branch7x7x3_1"]!, src, t1, nil); conv(c["branch7x7x3_2"]!, t1, t2, nil)
                conv(c["branch7x7x3_3"]!, t2, t1, nil); final("branch7x7x3_4", t1)
            }
            for i in 0..<n {
                maxPool2d(src + i * cin * hw, planes: cin, height: side, width: side, kernel: 3, stride: 2,
                          into: dst + i * image + offset * ohw)
            }
            offset += cin
        }
        precondition(offset == blk.outChannels, "\(blk.name): branches give \(offset) channels, expected \(blk.outChannels)")
        return os
    }
}
