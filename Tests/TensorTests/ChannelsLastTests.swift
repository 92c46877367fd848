import Foundation
import XCTest
@testable import Tensor

/// The channels-last (NHWC) kernels the SD-VAE decoder runs on, and the BF16 convolutions, against naive Float64
/// loops (NCHW references transposed to NHWC), on both GEMM backends and 1 and 2 workers. Tolerances are relative to
/// the largest |reference| value.
final class ChannelsLastTests: XCTestCase {
    func randoms(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var r = SplitMix64(seed: seed)
        return (0..<n).map { _ in scale * (2 * r.nextUnitFloat() - 1) }
    }

    func relError(_ a: [Float], _ b: [Double]) -> Double {
        precondition(a.count == b.count)
        let scale = max(b.map { abs($0) }.max() ?? 0, 1e-30)
        return (zip(a, b).map { abs(Double($0) - $1) }.max() ?? 0) / scale
    }

    func forEachSetup(_ body: (String) throws -> Void) rethrows {
        let savedBackend = GEMMBackend.current, savedThreads = Parallel.threads
        defer { GEMMBackend.current = savedBackend; Parallel.threads = savedThreads }
        for backend in GEMMBackend.allCases where backend == .openblas || DNNL.isAvailable {
            for threads in [1, 2] {
                GEMMBackend.current = backend
                Parallel.threads = threads
                try body("\(backend.rawValue), \(threads) worker(s)")
            }
        }
    }

    /// NCHW `[batch, c, p]` → NHWC `[batch, p, c]` (any element type).
    func toNHWC<T>(_ x: [T], batch: Int, c: Int, p: Int) -> [T] {
        var y = x
        for n in 0..<batch { for ch in 0..<c { for i in 0..<p { y[(n * p + i) * c + ch] = x[(n * c + ch) * p + i] } } }
        return y
    }

    /// `naiveConv` (NCHW, Float64), returned NHWC.
    func naiveConvNHWC(_x x: [Float], batch: Int, h: Int, w: Int, _ s: Conv2DShape, _ wt: [Float], _ bias: [Float]?) -> [Double] {
        let (oh, ow) = s.outputSize(height: h, width: w)
        let nchw: [Double] = naiveConv(x, batch: batch, h: h, w: w, s, wt, bias)
        var y = [Double](repeating: 0, count: nchw.count)
        for n in 0..<batch {
            for co in 0..<s.outChannels {
                for p in 0..<(oh * ow) {
                    y[(n * oh * ow + p) * s.outChannels + co] = nchw[(n * s.outChannels + co) * oh * ow + p]
                }
            }
        }
        return y
    }

    static let shapes: [(Conv2DShape, Int, Int)] = [
        (Conv2DShape(inChannels: 5, outChannels: 16, kernel: 3, stride: 1, padding: 1), 9, 11),
        (Conv2DShape(inChannels: 16, outChannels: 8, kernel: 1), 9, 11),
        (Conv2DShape(inChannels: 4, outChannels: 7, kernel: 3, stride: 2, padding: 0), 13, 10),
        (Conv2DShape(inChannels: 4, outChannels: 12, kernel: 3, stride: 2, padding: 1), 12, 9),
        (Conv2DShape(inChannels: 3, outChannels: 9, kernel: (1, 7), padding: (0, 3)), 8, 10),
        (Conv2DShape(inChannels: 6, outChannels: 8, kernel: 5, stride: 1, padding: 2), 7, 7),
        (Conv2DShape(inChannels: 2, outChannels: 3, kernel: 3, stride: 1, padding: 0), 3, 3),
    ]

    // FP32: tolerance 2e-6 relative (Float32 accumulation of ≤ 150 products of values in [−1, 1]); unpacked weights
    // on both backends and packed FP32 weights on oneDNN; one-pixel bands and big bands; overwrite and accumulate.
    func testChannelsLastConvolutionMatchesNaiveLoop() throws {
        try forEachSetup { setup in
            for (i, (s, h, w)) in Self.shapes.enumerated() {
                let batch = 2
                let x = randoms(batch * s.inChannels * h * w, seed: UInt64(10 + i))
                let wt = randoms(s.weightCount, seed: UInt64(30 + i)), b = randoms(s.outChannels, seed: UInt64(50 + i))
                let xh = toNHWC(x, batch: batch, c: s.inChannels, p: h * w)
                let ref = naiveConvNHWC(_x: x, batch: batch, h: h, w: w, s, wt, b)
                let prior = randoms(ref.count, seed: UInt64(70 + i))
                for pack in GEMMBackend.current == .onednn ? [false, true] : [false] {
                    let cw = try ChannelsLastConvWeights(shape: s, weight: wt, bias: b, pack: pack, precision: .fp32)
                    for perWorker in [channelsLastConvMinimumScratch(s), 1 << 16] {
                        let scratch = WorkerScratch(workers: 2, floatsPerWorker: perWorker)
                        var y = [Float](repeating: .nan, count: ref.count)
                        conv2dChannelsLast(xh, batch: batch, height: h, width: w, weights: cw, into: &y, scratch: scratch)
                        let e = relError(y, ref)
                        XCTAssertLessThanOrEqual(e, 2e-6, "\(s) on \(h)×\(w), \(setup), packed \(pack), scratch \(perWorker): \(e)")
                        var z = prior
                        conv2dChannelsLast(xh, batch: batch, height: h, width: w, weights: cw, into: &z, accumulate: true, scratch: scratch)
                        let ea = relError(z, zip(ref, prior).map { $0 + Double($1) })
                        XCTAssertLessThanOrEqual(ea, 2e-6, "\(s) accumulate, \(setup), packed \(pack): \(ea)")
                    }
                }
            }
        }
    }

    /// The BF16 value nearest to `v` as a Float.
    func bf16(_ v: Float) -> Float { Float(bitPattern: UInt32(bf16Bits(v)) << 16) }

    // BF16 (oneDNN): against the naive loop on the BF16-rounded input and weights, tolerance 2e-6 relative (the
    // products of BF16 values are exact in FP32; only FP32 accumulation differs), which shows both operands are
    // rounded to nearest even exactly once; and against the unrounded naive loop, tolerance 1e-2 (BF16 keeps 8
    // significant bits: each input carries ≤ 2⁻⁹ relative error). Channels-last and the NCHW conv2d both.
    func testBF16ConvolutionsRoundInputsOnceAndAccumulateInFP32() throws {
        guard DNNL.isAvailable else { throw XCTSkip("oneDNN has no CPU engine here") }
        var worstAgainstFP32 = 0.0
        try forEachSetup { setup in
            guard GEMMBackend.current == .onednn else { return }
            for (i, (s, h, w)) in Self.shapes.enumerated() {
                let batch = 2
                let x = randoms(batch * s.inChannels * h * w, seed: UInt64(10 + i))
                let wt = randoms(s.weightCount, seed: UInt64(30 + i)), b = randoms(s.outChannels, seed: UInt64(50 + i))
                let refRounded = naiveConvNHWC(_x: x.map(bf16), batch: batch, h: h, w: w, s, wt.map(bf16), b)
                let refExact = naiveConvNHWC(_x: x, batch: batch, h: h, w: w, s, wt, b)
                let cw = try ChannelsLastConvWeights(shape: s, weight: wt, bias: b, pack: true, precision: .bf16)
                XCTAssertEqual(cw.precision, .bf16)
                let scratch = WorkerScratch(workers: 2, floatsPerWorker: channelsLastConvMinimumScratch(s) * 7)
                var y = [Float](repeating: .nan, count: refExact.count)
                conv2dChannelsLast(toNHWC(x, batch: batch, c: s.inChannels, p: h * w), batch: batch, height: h, width: w,
                                   weights: cw, into: &y, scratch: scratch)
                let e = relError(y, refRounded), ex = relError(y, refExact)
                XCTAssertLessThanOrEqual(e, 2e-6, "channels-last BF16 \(s), \(setup): \(e) from the rounded reference")
                XCTAssertLessThanOrEqual(ex, 1e-2, "channels-last BF16 \(s), \(setup): \(ex) from FP32")
                worstAgainstFP32 = max(worstAgainstFP32, ex)
                // The input rounded once by oneDNN's reorder (bf16Input): the same BF16 values, so the same floats.
                let staging = TypedBuffer<UInt16>(count: x.count, repeating: 0)
                var yr = [Float](repeating: .nan, count: refExact.count)
                conv2dChannelsLast(toNHWC(x, batch: batch, c: s.inChannels, p: h * w), batch: batch, height: h, width: w,
                                   weights: cw, into: &yr, bf16Input: staging.pointer, scratch: scratch)
                XCTAssertEqual(yr, y, "channels-last BF16 \(s), \(setup): reorder-rounded input differs")
                XCTAssertEqual(Array(staging.buffer), toNHWC(x, batch: batch, c: s.inChannels, p: h * w).map(bf16Bits))
                // NCHW conv2d with a BF16 weight copy (Inception's path), with ReLU.
                let (oh, ow) = s.outputSize(height: h, width: w)
                let bw = bf16Copy(wt, count: wt.count)
                let nchwScratch = WorkerScratch(workers: 2, floatsPerWorker: s.minimumScratchPerWorker(width: w) * 2)
                var yc = [Float](repeating: .nan, count: refExact.count)
                conv2d(x, batch: batch, height: h, width: w, shape: s, weight: wt, bias: b, into: &yc, relu: true,
                       bf16Weight: bw.pointer, scratch: nchwScratch)
                let ycNHWC = toNHWC(yc, batch: batch, c: s.outChannels, p: oh * ow)
                let ec = relError(ycNHWC, refRounded.map { max($0, 0) })
                XCTAssertLessThanOrEqual(ec, 2e-6, "NCHW BF16 \(s), \(setup): \(ec) from the rounded reference")
            }
        }
        print("BF16 convolutions: worst max |Δ| / max |FP32 reference| = \(worstAgainstFP32)")
    }

    // Tolerance 1e-5 relative (as the NCHW GroupNorm): Float32 run sums, Float64 combination; SiLU through fastExp.
    func testChannelsLastGroupNormMatchesNaiveLoop() {
        let batch = 2, channels = 12, groups = 3, pixels = 200
        let x = randoms(batch * channels * pixels, seed: 3, scale: 4).map { $0 + 1.5 }  // NCHW, non-zero mean
        let wt = randoms(channels, seed: 4), b = randoms(channels, seed: 5)
        let eps: Float = 1e-6
        var ref = [Double](repeating: 0, count: x.count)
        let per = channels / groups
        for n in 0..<batch {
            for g in 0..<groups {
                let lo = (n * channels + g * per) * pixels, hi = lo + per * pixels
                let vals = x[lo..<hi].map(Double.init)
                let mean = vals.reduce(0, +) / Double(vals.count)
                let variance = vals.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(vals.count)
                for i in lo..<hi {
                    let c = (i / pixels) % channels
                    ref[i] = (Double(x[i]) - mean) / (variance + Double(eps)).squareRoot() * Double(wt[c]) + Double(b[c])
                }
            }
        }
        let xh = toNHWC(x, batch: batch, c: channels, p: pixels), refh = toNHWC(ref, batch: batch, c: channels, p: pixels)
        forEachSetup { setup in
            var y = [Float](repeating: .nan, count: x.count)
            groupNormChannelsLast(xh, batch: batch, pixels: pixels, channels: channels, groups: groups, eps: eps, weight: wt, bias: b, into: &y)
            XCTAssertLessThanOrEqual(relError(y, refh), 1e-5, "groupNormChannelsLast, \(setup)")
            var z = xh  // in place, with SiLU
            z.withUnsafeMutableBufferPointer { p in
                groupNormChannelsLast(p.baseAddress!, batch: batch, pixels: pixels, channels: channels, groups: groups, eps: eps,
                                      weight: wt, bias: b, silu: true, into: p.baseAddress!)
            }
            XCTAssertLessThanOrEqual(relError(z, refh.map { $0 / (1 + exp(-$0)) }), 1e-5, "groupNormChannelsLast + SiLU in place, \(setup)")
        }
    }

    // Exact: copies and transposes.
    func testChannelsLastUpsamplingAndLayoutConversions() {
        let batch = 2, c = 5, h = 3, w = 4
        let x = randoms(batch * c * h * w, seed: 6)
        var y = [Float](repeating: .nan, count: 4 * x.count)
        let xh = toNHWC(x, batch: batch, c: c, p: h * w)
        upsampleNearest2xChannelsLast(xh, batch: batch, height: h, width: w, channels: c, into: &y)
        for n in 0..<batch { for i in 0..<(2 * h) { for j in 0..<(2 * w) { for ch in 0..<c {
            XCTAssertEqual(y[((n * 2 * h + i) * 2 * w + j) * c + ch], xh[((n * h + i / 2) * w + j / 2) * c + ch])
        } } } }
        var t = [Float](repeating: .nan, count: x.count), back = t
        nchwToNHWC(x, batch: batch, channels: c, pixels: h * w, into: &t)
        XCTAssertEqual(t, xh)
        nhwcToNCHW(t, batch: batch, channels: c, pixels: h * w, into: &back)
        XCTAssertEqual(back, x)
    }

    // Tolerance 1e-5 relative: the token-major attention against the channel-major one (itself tested against a
    // Float64 loop in VisionKernelTests within 1e-5), same inputs transposed.
    func testChannelsLastAttentionMatchesChannelMajorAttention() {
        let batch = 2, c = 24, p = 40
        let xn = randoms(batch * c * p, seed: 8), res = randoms(batch * c * p, seed: 9)
        let ws = (0..<4).map { randoms(c * c, seed: UInt64(20 + $0), scale: 0.4) }
        let bs = (0..<4).map { randoms(c, seed: UInt64(40 + $0)) }
        forEachSetup { setup in
            let scratch = FloatBuffer(count: spatialAttentionScratchCount(channels: c, pixels: p))
            var ref = [Float](repeating: .nan, count: xn.count)
            spatialSelfAttention(xn, batch: batch, channels: c, pixels: p, wq: ws[0], bq: bs[0], wk: ws[1], bk: bs[1],
                                 wv: ws[2], bv: bs[2], wo: ws[3], bo: bs[3], residual: res, into: &ref, scratch: scratch.pointer)
            var y = toNHWC(res, batch: batch, c: c, p: p)  // residual in place
            y.withUnsafeMutableBufferPointer { yp in
                spatialSelfAttentionChannelsLast(toNHWC(xn, batch: batch, c: c, p: p), batch: batch, channels: c, pixels: p,
                                                 wq: ws[0], bq: bs[0], wk: ws[1], bk: bs[1], wv: ws[2], bv: bs[2], wo: ws[3], bo: bs[3],
                                                 residual: yp.baseAddress!, into: yp.baseAddress!, scratch: scratch.pointer)
            }
            XCTAssertLessThanOrEqual(relError(y, toNHWC(ref, batch: batch, c: c, p: p).map(Double.init)), 1e-5, "attention, \(setup)")
        }
    }
}
