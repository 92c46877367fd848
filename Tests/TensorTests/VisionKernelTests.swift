import Foundation
import XCTest
@testable import Tensor

/// The image kernels (convolution, GroupNorm, resampling, pooling, spatial attention) against naive loops written
/// out here in Float64, on both GEMM backends and on 1 and 2 workers. Tolerances are stated per test, relative to the
/// largest |reference| value.
final class VisionKernelTests: XCTestCase {
    func randoms(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var r = SplitMix64(seed: seed)
        return (0..<n).map { _ in scale * (2 * r.nextUnitFloat() - 1) }
    }

    func assertClose(_ a: [Float], _ b: [Double], rel: Double, _ what: String = "",
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let scale = max(b.map { abs($0) }.max() ?? 0, 1e-30)
        let err = zip(a, b).map { abs(Double($0) - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(err / scale, rel, "\(what): max |Δ| / max |ref| = \(err / scale)", file: file, line: line)
    }

    /// Runs `body` on each backend available × 1 and 2 workers, restoring the process-wide settings.
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


    // Tolerance 2e-6 relative: Float32 GEMM accumulation over at most 5·5·6 = 150 products of values in [−1, 1].
    func testConvolutionMatchesNaiveLoopForEveryKernelStrideAndPadding() {
        let cases: [(Conv2DShape, Int, Int)] = [
            (Conv2DShape(inChannels: 5, outChannels: 7, kernel: 3, stride: 1, padding: 1), 9, 11),
            (Conv2DShape(inChannels: 5, outChannels: 7, kernel: 1), 9, 11),
            (Conv2DShape(inChannels: 4, outChannels: 6, kernel: 3, stride: 2, padding: 0), 13, 10),
            (Conv2DShape(inChannels: 4, outChannels: 6, kernel: 3, stride: 2, padding: 1), 12, 9),
            (Conv2DShape(inChannels: 3, outChannels: 5, kernel: (1, 7), padding: (0, 3)), 8, 10),
            (Conv2DShape(inChannels: 3, outChannels: 5, kernel: (7, 1), padding: (3, 0)), 10, 8),
            (Conv2DShape(inChannels: 6, outChannels: 4, kernel: 5, stride: 1, padding: 2), 7, 7),
            (Conv2DShape(inChannels: 2, outChannels: 3, kernel: 3, stride: 1, padding: 0), 3, 3),
        ]
        forEachSetup { setup in
            for (i, (s, h, w)) in cases.enumerated() {
                let batch = 2
                let x = randoms(batch * s.inChannels * h * w, seed: UInt64(10 + i))
                let wt = randoms(s.weightCount, seed: UInt64(30 + i)), b = randoms(s.outChannels, seed: UInt64(50 + i))
                let ref = naiveConv(x, batch: batch, h: h, w: w, s, wt, b)
                let (oh, ow) = s.outputSize(height: h, width: w)
                // Whole-image bands, and the smallest scratch (one output row per band).
                for perWorker in [s.minimumScratchPerWorker(width: w) * oh, s.minimumScratchPerWorker(width: w)] {
                    let scratch = WorkerScratch(workers: 2, floatsPerWorker: perWorker)
                    var y = [Float](repeating: .nan, count: batch * s.outChannels * oh * ow)
                    conv2d(x, batch: batch, height: h, width: w, shape: s, weight: wt, bias: b, into: &y, scratch: scratch)
                    assertClose(y, ref, rel: 2e-6, "\(s) on \(h)×\(w), \(setup), scratch \(perWorker)")
                }
                // No bias.
                let scratch = WorkerScratch(workers: 2, floatsPerWorker: s.minimumScratchPerWorker(width: w) * 2)
                var y = [Float](repeating: .nan, count: batch * s.outChannels * oh * ow)
                conv2d(x, batch: batch, height: h, width: w, shape: s, weight: wt, bias: nil, into: &y, scratch: scratch)
                assertClose(y, naiveConv(x, batch: batch, h: h, w: w, s, wt, nil), rel: 2e-6, "\(s) no bias, \(setup)")
            }
        }
    }

    // Tolerance 1e-5 relative: Float32 sums over ≤ 4·64 values; SiLU through fastExp (3e-7 relative).
    func testGroupNormWithAndWithoutSiLUMatchesNaiveLoop() {
        let batch = 2, channels = 12, groups = 3, pixels = 63
        let x = randoms(batch * channels * pixels, seed: 3, scale: 4).map { $0 + 1.5 }  // non-zero mean
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
        forEachSetup { setup in
            var y = [Float](repeating: .nan, count: x.count)
            groupNorm(x, batch: batch, channels: channels, pixels: pixels, groups: groups, eps: eps, weight: wt, bias: b, into: &y)
            assertClose(y, ref, rel: 1e-5, "groupNorm, \(setup)")
            var z = x  // in place, with SiLU
            z.withUnsafeMutableBufferPointer { p in
                groupNorm(p.baseAddress!, batch: batch, channels: channels, pixels: pixels, groups: groups, eps: eps,
                          weight: wt, bias: b, silu: true, into: p.baseAddress!)
            }
            assertClose(z, ref.map { $0 / (1 + exp(-$0)) }, rel: 1e-5, "groupNorm + SiLU in place, \(setup)")
        }
    }

    // Exact: copies.
    func testNearestUpsamplingCopiesEachPixelToA2x2Block() {
        let planes = 3, h = 4, w = 5
        let x = randoms(planes * h * w, seed: 6)
        var y = [Float](repeating: .nan, count: planes * 4 * h * w)
        upsampleNearest2x(x, planes: planes, height: h, width: w, into: &y)
        for p in 0..<planes { for i in 0..<(2 * h) { for j in 0..<(2 * w) {
            XCTAssertEqual(y[(p * 2 * h + i) * 2 * w + j], x[(p * h + i / 2) * w + j / 2])
        } } }
    }

    // Average pooling: tolerance 1e-6 relative (≤ 9 Float32 terms). Max pooling: exact.
    func testPoolingMatchesNaiveLoop() {
        let planes = 4, h = 9, w = 8
        let x = randoms(planes * h * w, seed: 7)
        forEachSetup { setup in
            for (k, s, pad) in [(3, 1, 1), (3, 2, 0), (2, 2, 0), (8, 8, 0), (3, 2, 1)] {
                let oh = pooledSize(h, kernel: k, stride: s, padding: pad), ow = pooledSize(w, kernel: k, stride: s, padding: pad)
                for include in [true, false] {
                    var ref = [Double](repeating: 0, count: planes * oh * ow)
                    var refMax = [Float](repeating: 0, count: planes * oh * ow)
                    for p in 0..<planes { for oy in 0..<oh { for ox in 0..<ow {
                        var sum = 0.0, count = 0, m = -Float.infinity
                        for ky in 0..<k { for kx in 0..<k {
                            let iy = oy * s - pad + ky, ix = ox * s - pad + kx
                            guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                            sum += Double(x[(p * h + iy) * w + ix]); count += 1; m = max(m, x[(p * h + iy) * w + ix])
                        } }
                        ref[(p * oh + oy) * ow + ox] = sum / Double(include ? k * k : count)
                        refMax[(p * oh + oy) * ow + ox] = m
                    } } }
                    var y = [Float](repeating: .nan, count: ref.count)
                    avgPool2d(x, planes: planes, height: h, width: w, kernel: k, stride: s, padding: pad,
                              countIncludePad: include, into: &y)
                    assertClose(y, ref, rel: 1e-6, "avg k\(k) s\(s) p\(pad) include \(include), \(setup)")
                    maxPool2d(x, planes: planes, height: h, width: w, kernel: k, stride: s, padding: pad, into: &y)
                    XCTAssertEqual(y, refMax, "max k\(k) s\(s) p\(pad), \(setup)")
                }
            }
        }
    }

    // Tolerance 1e-5 relative: Float32 GEMMs with K ≤ 40, softmax through fastExp (3e-7 relative).
    func testSpatialSelfAttentionMatchesTokenMajorNaiveLoop() {
        let batch = 2, c = 24, p = 40
        let xn = randoms(batch * c * p, seed: 8), res = randoms(batch * c * p, seed: 9)
        let ws = (0..<4).map { randoms(c * c, seed: UInt64(20 + $0), scale: 0.4) }
        let bs = (0..<4).map { randoms(c, seed: UInt64(40 + $0)) }
        // Token-major reference: t[i, :] = xn[:, i]; q = t·Wqᵀ + bq; softmax(q kᵀ/√C) v; ·Woᵀ + bo; + residual.
        var ref = [Double](repeating: 0, count: batch * c * p)
        for n in 0..<batch {
            func proj(_ w: [Float], _ b: [Float], _ t: [[Double]]) -> [[Double]] {
                t.map { row in (0..<c).map { o in Double(b[o]) + (0..<c).reduce(0.0) { $0 + Double(w[o * c + $1]) * row[$1] } } }
            }
            let t = (0..<p).map { i in (0..<c).map { Double(xn[n * c * p + $0 * p + i]) } }
            let q = proj(ws[0], bs[0], t), k = proj(ws[1], bs[1], t), v = proj(ws[2], bs[2], t)
            var o = [[Double]](repeating: [Double](repeating: 0, count: c), count: p)
            for i in 0..<p {
                let logits = (0..<p).map { j in (0..<c).reduce(0.0) { $0 + q[i][$1] * k[j][$1] } / Double(c).squareRoot() }
                let m = logits.max()!
                let e = logits.map { exp($0 - m) }
                let z = e.reduce(0, +)
                for j in 0..<p { for ch in 0..<c { o[i][ch] += e[j] / z * v[j][ch] } }
            }
            let out = proj(ws[3], bs[3], o)
            for i in 0..<p { for ch in 0..<c { ref[n * c * p + ch * p + i] = out[i][ch] + Double(res[n * c * p + ch * p + i]) } }
        }
        forEachSetup { setup in
            let scratch = FloatBuffer(count: spatialAttentionScratchCount(channels: c, pixels: p))
            var y = [Float](repeating: .nan, count: ref.count)
            spatialSelfAttention(xn, batch: batch, channels: c, pixels: p, wq: ws[0], bq: bs[0], wk: ws[1], bk: bs[1],
                                 wv: ws[2], bv: bs[2], wo: ws[3], bo: bs[3], residual: res, into: &y, scratch: scratch.pointer)
            assertClose(y, ref, rel: 1e-5, "spatial attention, \(setup)")
        }
    }

    // ReLU and a wider output image stride (writing a channel slice of a concatenation): exact against the plain
    // conv's result clamped at 0, and the other channels untouched.
    func testConvolutionWritesAChannelSliceWithReLU() {
        let s = Conv2DShape(inChannels: 3, outChannels: 4, kernel: (1, 3), padding: (0, 1))
        let batch = 2, h = 5, w = 6, wide = 10, offset = 2
        let x = randoms(batch * 3 * h * w, seed: 60), wt = randoms(s.weightCount, seed: 61), b = randoms(4, seed: 62)
        forEachSetup { setup in
            let scratch = WorkerScratch(workers: 2, floatsPerWorker: s.minimumScratchPerWorker(width: w))
            var plain = [Float](repeating: 0, count: batch * 4 * h * w)
            conv2d(x, batch: batch, height: h, width: w, shape: s, weight: wt, bias: b, into: &plain, scratch: scratch)
            var y = [Float](repeating: -7, count: batch * wide * h * w)
            y.withUnsafeMutableBufferPointer { p in
                conv2d(x, batch: batch, height: h, width: w, shape: s, weight: wt, bias: b, into: p.baseAddress! + offset * h * w,
                       outImageStride: wide * h * w, relu: true, scratch: scratch)
            }
            for n in 0..<batch { for c in 0..<wide { for i in 0..<(h * w) {
                let got = y[(n * wide + c) * h * w + i]
                if c >= offset && c < offset + 4 {
                    XCTAssertEqual(got, max(plain[(n * 4 + c - offset) * h * w + i], 0), setup)
                } else {
                    XCTAssertEqual(got, -7, setup)
                }
            } } }
        }
    }

    // Against F.interpolate(x, size, mode="bilinear", align_corners=False) values printed by PyTorch 2.13 (float64)
    // for x[i, j] = (4i + j)^1.5 / 7 on 3×4: tolerance 1e-6 relative (Float32 coordinates and weights).
    func testBilinearResizeMatchesPyTorchAlignCornersFalse() {
        let x = (0..<12).map { Float(pow(Double($0), 1.5) / 7) }
        let up: [Double] = [0.0, 0.1, 0.2734590803, 0.5055349592, 0.742307489, 0.1632653061, 0.2944130188, 0.4984473581,
                            0.7566612849, 1.014228035, 0.6530612245, 0.8776520752, 1.1734121913, 1.5100402619, 1.829989673,
                            1.1428571429, 1.4608911316, 1.8483770246, 2.263419239, 2.6457513111, 2.0384132856, 2.4075434078,
                            2.8507902365, 3.3187378567, 3.745503159, 2.9339694283, 3.354195684, 3.8532034485, 4.3740564745,
                            4.845255007, 3.2324881426, 3.6697464428, 4.1873411858, 4.7258293471, 5.2118389563]
        let down: [Double] = [0.3225020231, 0.6671885664, 1.1531297742, 2.8070928265, 3.6026001455, 4.4607717533]
        var y = [Float](repeating: .nan, count: 35)
        resizeBilinear(x, planes: 1, height: 3, width: 4, outHeight: 7, outWidth: 5, into: &y)
        assertClose(y, up, rel: 1e-6, "3×4 → 7×5")
        var z = [Float](repeating: .nan, count: 6)
        resizeBilinear(x, planes: 1, height: 3, width: 4, outHeight: 2, outWidth: 3, into: &z)
        assertClose(z, down, rel: 1e-6, "3×4 → 2×3")
        // Same size is the identity.
        var same = [Float](repeating: .nan, count: 12)
        resizeBilinear(x, planes: 1, height: 3, width: 4, outHeight: 3, outWidth: 4, into: &same)
        XCTAssertEqual(same, x)
    }
}

/// Naive NCHW convolution in Float64: the reference of every conv test (zero padding, optional bias).
func naiveConv(_ x: [Float], batch: Int, h: Int, w: Int, _ s: Conv2DShape, _ wt: [Float], _ bias: [Float]?) -> [Double] {
    let (oh, ow) = s.outputSize(height: h, width: w)
    var y = [Double](repeating: 0, count: batch * s.outChannels * oh * ow)
    for n in 0..<batch {
        for co in 0..<s.outChannels {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var acc = Double(bias?[co] ?? 0)
                    for ci in 0..<s.inChannels {
                        for ky in 0..<s.kernelH {
                            for kx in 0..<s.kernelW {
                                let iy = oy * s.strideH - s.padH + ky, ix = ox * s.strideW - s.padW + kx
                                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                                acc += Double(x[((n * s.inChannels + ci) * h + iy) * w + ix])
                                    * Double(wt[((co * s.inChannels + ci) * s.kernelH + ky) * s.kernelW + kx])
                            }
                        }
                    }
                    y[((n * s.outChannels + co) * oh + oy) * ow + ox] = acc
                }
            }
        }
    }
    return y
}
