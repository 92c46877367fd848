import Foundation
import XCTest
@testable import Tensor

/// Every kernel against a naive loop written out here (Float64 where it matters). Tolerances are stated per test.
final class KernelTests: XCTestCase {
    var rng = SystemRandomNumberGenerator()

    func randoms(_ n: Int, seed: UInt64 = 1, scale: Float = 1) -> [Float] {
        var s = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<n).map { _ in
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            return scale * (Float(s >> 40) / Float(1 << 24) * 2 - 1)
        }
    }

    func naiveLinear(_ x: [Float], rows: Int, _ w: [Float], out: Int, inF: Int, bias: [Float]?) -> [Double] {
        var y = [Double](repeating: 0, count: rows * out)
        for r in 0..<rows {
            for o in 0..<out {
                var acc = Double(bias?[o] ?? 0)
                for i in 0..<inF { acc += Double(x[r * inF + i]) * Double(w[o * inF + i]) }
                y[r * out + o] = acc
            }
        }
        return y
    }

    func assertClose(_ a: [Float], _ b: [Double], rel: Double, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        let scale = max(b.map { abs($0) }.max() ?? 0, 1e-30)
        let err = zip(a, b).map { abs(Double($0) - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(err / scale, rel, "max |Δ| / max |ref| = \(err / scale)", file: file, line: line)
    }

    // Tolerance 1e-5 relative to max |y|: float32 accumulation over ≤ 70 terms.
    func testLinearMatchesNaiveLoopWithStoredOutInWeight() {
        let rows = 7, inF = 37, out = 29
        let x = randoms(rows * inF, seed: 1), w = randoms(out * inF, seed: 2), b = randoms(out, seed: 3)
        var y = [Float](repeating: 0, count: rows * out)
        linear(x, rows: rows, inFeatures: inF, weight: w, outFeatures: out, bias: b, into: &y)
        assertClose(y, naiveLinear(x, rows: rows, w, out: out, inF: inF, bias: b), rel: 1e-5)
        // accumulate: y += x·wᵀ + b
        var acc = y
        linear(x, rows: rows, inFeatures: inF, weight: w, outFeatures: out, bias: b, into: &acc, accumulate: true)
        assertClose(acc, naiveLinear(x, rows: rows, w, out: out, inF: inF, bias: b).map { 2 * $0 }, rel: 1e-5)
    }

    func testParallelLinearSplitsRowsAndColumnsIdentically() {
        Parallel.threads = 2
        defer { Parallel.threads = 1 }
        for rows in [3, 100] {
            let inF = 24, out = 200
            let x = randoms(rows * inF, seed: 4), w = randoms(out * inF, seed: 5), b = randoms(out, seed: 6)
            var y = [Float](repeating: 0, count: rows * out)
            parallelLinear(x, rows: rows, inFeatures: inF, weight: w, outFeatures: out, bias: b, into: &y)
            assertClose(y, naiveLinear(x, rows: rows, w, out: out, inF: inF, bias: b), rel: 1e-5)
        }
    }

    func testHalfWeightsWidenExactly() {
        let values: [Float] = [0, 1, -2.5, 65504, 6.1035156e-05, -0.333251953125]
        let f16 = values.map { Float16($0).bitPattern }
        var out = [Float](repeating: 0, count: values.count)
        widenF16(f16, into: &out, count: values.count)
        XCTAssertEqual(out, values.map { Float(Float16($0)) })
        let bf16 = values.map { UInt16($0.bitPattern >> 16) }
        widenBF16(bf16, into: &out, count: values.count)
        XCTAssertEqual(out, values.map { Float(bitPattern: $0.bitPattern & 0xFFFF_0000) })
    }

    // LayerNorm: 1e-5 relative against a Float64 two-pass loop, with and without affine, strided rows.
    func testLayerNorm() {
        let rows = 5, width = 48, ld = 53
        let x = randoms(rows * ld, seed: 7, scale: 3), w = randoms(width, seed: 8), b = randoms(width, seed: 9)
        for affine in [false, true] {
            var y = [Float](repeating: 0, count: rows * width)
            x.withUnsafeBufferPointer { xp in
                w.withUnsafeBufferPointer { wp in
                    b.withUnsafeBufferPointer { bp in
                        layerNorm(xp.baseAddress!, rows: rows, width: width, eps: 1e-6, weight: affine ? wp.baseAddress : nil,
                                  bias: affine ? bp.baseAddress : nil, into: &y, ldx: ld)
                    }
                }
            }
            var ref = [Double]()
            for r in 0..<rows {
                let row = (0..<width).map { Double(x[r * ld + $0]) }
                let mean = row.reduce(0, +) / Double(width)
                let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(width)
                for i in 0..<width {
                    let n = (row[i] - mean) / (variance + 1e-6).squareRoot()
                    ref.append(affine ? n * Double(w[i]) + Double(b[i]) : n)
                }
            }
            assertClose(y, ref, rel: 1e-5)
        }
    }

    // fastExp is the exp behind SiLU, GELU and softmax: 3e-7 relative over the float range it is used on.
    func testFastExp() {
        var worst = 0.0
        var v: Float = -87
        while v < 88 {
            let rel = abs(Double(fastExp(v)) - Foundation.exp(Double(v))) / Foundation.exp(Double(v))
            worst = max(worst, rel)
            v += 0.0137
        }
        XCTAssertLessThan(worst, 3e-7)
        XCTAssertEqual(fastExp(-200), 0)
    }

    // Softmax on attention-width rows and odd widths, with a stride: 1e-6 relative against Float64.
    func testWideSoftmax() {
        for width in [256, 40, 7] {
            let ld = width + 3, rows = 3
            let x = randoms(rows * ld, seed: UInt64(width), scale: 10)
            var s = x
            softmaxRowsInPlace(&s, rows: rows, width: width, ld: ld)
            for r in 0..<rows {
                let row = x[(r * ld)..<(r * ld + width)].map(Double.init)
                let m = row.max()!
                let e = row.map { Foundation.exp($0 - m) }
                let total = e.reduce(0, +)
                for k in 0..<width {
                    XCTAssertEqual(Double(s[r * ld + k]), e[k] / total, accuracy: 1e-6 * e[k] / total + 1e-12, "width \(width)")
                }
                for k in width..<ld { XCTAssertEqual(s[r * ld + k], x[r * ld + k]) }
            }
        }
    }

    // Softmax, SiLU, tanh-GELU and SwiGLU: 1e-6 relative against Float64 formulas.
    func testActivationsAndSoftmax() {
        let x = randoms(64, seed: 10, scale: 8)
        var s = x
        softmaxRowsInPlace(&s, rows: 4, width: 16)
        var ref = [Double]()
        for r in 0..<4 {
            let row = x[(r * 16)..<(r * 16 + 16)].map(Double.init)
            let m = row.max()!
            let e = row.map { Foundation.exp($0 - m) }
            ref += e.map { $0 / e.reduce(0, +) }
        }
        assertClose(s, ref, rel: 1e-6)

        var a = x
        siluInPlace(&a, count: a.count)
        assertClose(a, x.map { Double($0) / (1 + Foundation.exp(-Double($0))) }, rel: 1e-6)

        var g = x
        geluTanhInPlace(&g, count: g.count)
        assertClose(g, x.map { v in
            let d = Double(v)
            return 0.5 * d * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (d + 0.044715 * d * d * d)))
        }, rel: 1e-6)

        // SwiGLU on fused [gate | up] rows of width 8, into a dense [4, 8] matrix, each row scaled
        // by its gate weight: FP32 within 1e-6 relative; BF16 within one BF16 rounding (2⁻⁸ relative per value).
        let scale: [Float] = [0.25, 1, -0.5, 0.75]
        var swRef = [Double]()
        for r in 0..<4 {
            for i in 0..<8 {
                let gv = Double(x[r * 16 + i]), uv = Double(x[r * 16 + 8 + i])
                swRef.append(Double(scale[r]) * gv / (1 + Foundation.exp(-gv)) * uv)
            }
        }
        var out = [Float](repeating: 0, count: 32), unscaled = out
        swiglu(x, rows: 4, width: 8, scale: scale, into: &out)
        assertClose(out, swRef, rel: 1e-6)
        swiglu(x, rows: 4, width: 8, scale: nil, into: &unscaled)
        for j in 0..<32 { XCTAssertEqual(unscaled[j] * scale[j / 8], out[j], accuracy: 1e-6 * abs(out[j]) + 1e-12) }
        var bits = [UInt16](repeating: 0, count: 32)
        swigluToBF16(x, rows: 4, width: 8, scale: scale, into: &bits)
        do {
            for j in 0..<32 {
                let v = Double(Float(bitPattern: UInt32(bits[j]) << 16))
                XCTAssertEqual(v, swRef[j], accuracy: abs(swRef[j]) * 0x1p-8 + 1e-30, "bf16 element \(j)")
            }
        }
    }

    // Attention through GEMM against a per-element Float64 loop; 1e-5 relative.
    func testMultiHeadAttention() {
        let batch = 2, tokens = 5, heads = 3, hd = 4, dim = heads * hd
        let qkv = randoms(batch * tokens * 3 * dim, seed: 11, scale: 2)
        var out = [Float](repeating: 0, count: batch * tokens * dim)
        var scores = [Float](repeating: 0, count: 2 * tokens * tokens)
        Parallel.threads = 2
        defer { Parallel.threads = 1 }
        multiHeadAttention(qkv: qkv, out: &out, batch: batch, tokens: tokens, dim: dim, heads: heads, scores: &scores)
        var ref = [Double](repeating: 0, count: out.count)
        for b in 0..<batch {
            for h in 0..<heads {
                for i in 0..<tokens {
                    func at(_ t: Int, _ part: Int, _ c: Int) -> Double { Double(qkv[(b * tokens + t) * 3 * dim + part * dim + h * hd + c]) }
                    var logits = (0..<tokens).map { j in (0..<hd).map { at(i, 0, $0) * at(j, 1, $0) }.reduce(0, +) / Double(hd).squareRoot() }
                    let m = logits.max()!
                    logits = logits.map { Foundation.exp($0 - m) }
                    let z = logits.reduce(0, +)
                    for c in 0..<hd {
                        ref[(b * tokens + i) * dim + h * hd + c] = (0..<tokens).map { logits[$0] / z * at($0, 2, c) }.reduce(0, +)
                    }
                }
            }
        }
        assertClose(out, ref, rel: 1e-5)
    }

    // Patch embedding order (channel slowest, then patch row, then column) and unpatchify (channel fastest).
    func testPatchifyAndUnpatchifyLayouts() {
        let b = 2, c = 3, h = 4, w = 6, p = 2
        let x = (0..<(b * c * h * w)).map { Float($0) }
        var patches = [Float](repeating: 0, count: b * (h / p) * (w / p) * c * p * p)
        patchify(x, batch: b, channels: c, height: h, width: w, patch: p, into: &patches)
        let gw = w / p
        for bi in 0..<b { for r in 0..<(h / p) { for col in 0..<gw { for ch in 0..<c { for pi in 0..<p { for qi in 0..<p {
            let tok = (bi * (h / p) + r) * gw + col
            XCTAssertEqual(patches[tok * c * p * p + (ch * p + pi) * p + qi], x[((bi * c + ch) * h + r * p + pi) * w + col * p + qi])
        } } } } } }
        // unpatchify: token vector ordered [pi][qi][c]
        let tokens = (0..<(b * (h / p) * gw * p * p * c)).map { Float($0) }
        var img = [Float](repeating: -1, count: b * c * h * w)
        unpatchify(tokens, batch: b, channels: c, height: h, width: w, patch: p, into: &img)
        for bi in 0..<b { for ch in 0..<c { for y in 0..<h { for xx in 0..<w {
            let tok = (bi * (h / p) + y / p) * gw + xx / p
            XCTAssertEqual(img[((bi * c + ch) * h + y) * w + xx], tokens[tok * p * p * c + ((y % p) * p + xx % p) * c + ch])
        } } } }
    }

    // Position table: sin then cos, column in the first half; timestep embedding: cos then sin. 1e-6 absolute.
    func testSinusoidalEmbeddings() {
        let dim = 8, grid = 3
        let table = positionEmbedding2D(dim: dim, grid: grid)
        for m in 0..<(grid * grid) {
            let col = Double(m % grid), row = Double(m / grid)
            let omega = [1.0, 1.0 / 100.0]  // 10000^(-k/2), k = 0, 1
            let expected = omega.map { sin(col * $0) } + omega.map { cos(col * $0) } + omega.map { sin(row * $0) } + omega.map { cos(row * $0) }
            for i in 0..<dim { XCTAssertEqual(Double(table[m * dim + i]), expected[i], accuracy: 1e-6) }
        }
        let t: [Float] = [0, 3.7, 999]
        var emb = [Float](repeating: 0, count: 3 * 256)
        timestepEmbedding(t, batch: 3, dim: 256, into: &emb)
        for b in 0..<3 {
            for k in [0, 1, 64, 127] {
                let a = Double(t[b]) * Foundation.exp(-Foundation.log(10000.0) * Double(k) / 128)
                XCTAssertEqual(Double(emb[b * 256 + k]), cos(a), accuracy: 1e-6)
                XCTAssertEqual(Double(emb[b * 256 + 128 + k]), sin(a), accuracy: 1e-6)
            }
        }
    }
}
