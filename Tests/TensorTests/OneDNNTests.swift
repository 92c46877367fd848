import XCTest
@testable import Tensor

/// The oneDNN backend against naive Float64 loops written out here. Tolerances: FP32 results within
/// 2e-6 · Σ|a·b| per element (K ≤ 400 FP32 additions); BF16 results are compared with the naive product of the
/// BF16-rounded inputs, within 2e-6 · Σ|a·b| (products of BF16 values are exact in FP32, accumulation is FP32).
final class OneDNNTests: XCTestCase {
    override func setUpWithError() throws {
        try XCTSkipUnless(DNNL.isAvailable, "no oneDNN CPU engine")
    }

    func randoms(_ n: Int, seed: UInt64) -> [Float] {
        var g = SplitMix(seed)
        return (0..<n).map { _ in g.unit() * 2 - 1 }
    }

    struct SplitMix {
        var s: UInt64
        init(_ seed: UInt64) { s = seed }
        mutating func next() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) }
        mutating func int(_ r: ClosedRange<Int>) -> Int { r.lowerBound + Int(next() % UInt64(r.count)) }
    }

    /// Reference BF16 rounding by value: the nearer of the two BF16 neighbours, ties to the even mantissa.
    func referenceBF16(_ v: Float) -> Float {
        let lo = Float(bitPattern: v.bitPattern & 0xFFFF_0000)
        let hi = Float(bitPattern: (v.bitPattern & 0xFFFF_0000) &+ 0x1_0000)
        let dl = abs(Double(v) - Double(lo)), dh = abs(Double(hi) - Double(v))
        if dl < dh { return lo }
        if dh < dl { return hi }
        return (lo.bitPattern >> 16) & 1 == 0 ? lo : hi
    }

    func testBF16RoundingIsNearestEven() {
        var values: [Float] = randoms(20000, seed: 3).map { $0 * 1000 }
        values += [1, -1, 0, 1.00390625, 1.01171875, 3.0e38, -3.0e38, 1e-40]   // exact ties and edge cases
        for v in values {
            let got = Float(bitPattern: UInt32(bf16Bits(v)) << 16)
            XCTAssertEqual(got.bitPattern, referenceBF16(v).bitPattern, "\(v)")
        }
        XCTAssertTrue(Float(bitPattern: UInt32(bf16Bits(.nan)) << 16).isNaN)
    }

    /// Random shapes, transposes, alpha, beta ∈ {0, 1} and padded leading dimensions through `gemm` under oneDNN.
    func testSGEMMMatchesNaive() {
        let saved = GEMMBackend.current
        GEMMBackend.current = .onednn
        defer { GEMMBackend.current = saved }
        var g = SplitMix(11)
        for trial in 0..<40 {
            let m = g.int(1...70), n = g.int(1...90), k = g.int(1...400)
            let transA = g.int(0...1) == 1, transB = g.int(0...1) == 1
            let alpha: Float = trial % 3 == 0 ? 0.125 : 1
            let beta: Float = trial % 2 == 0 ? 0 : 1
            let lda = (transA ? m : k) + g.int(0...5), ldb = (transB ? k : n) + g.int(0...5), ldc = n + g.int(0...5)
            let a = randoms((transA ? k : m) * lda, seed: UInt64(trial) * 3 + 1)
            let b = randoms((transB ? n : k) * ldb, seed: UInt64(trial) * 3 + 2)
            var c = randoms(m * ldc, seed: UInt64(trial) * 3 + 3)
            let c0 = c
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: ap.baseAddress!, lda: lda,
                     b: bp.baseAddress!, ldb: ldb, beta: beta, c: cp.baseAddress!, ldc: ldc)
            } } }
            for i in 0..<m {
                for j in 0..<n {
                    var acc = 0.0, mag = 0.0
                    for p in 0..<k {
                        let av = Double(transA ? a[p * lda + i] : a[i * lda + p])
                        let bv = Double(transB ? b[j * ldb + p] : b[p * ldb + j])
                        acc += av * bv; mag += abs(av * bv)
                    }
                    let want = Double(alpha) * acc + Double(beta) * Double(c0[i * ldc + j])
                    XCTAssertEqual(Double(c[i * ldc + j]), want, accuracy: 2e-6 * (mag + abs(Double(c0[i * ldc + j]))) + 1e-30,
                                   "trial \(trial) m\(m) n\(n) k\(k) tA\(transA) tB\(transB) (\(i), \(j))")
                }
            }
            // Padding columns of C beyond n are untouched.
            for i in 0..<m { for j in n..<ldc { XCTAssertEqual(c[i * ldc + j], c0[i * ldc + j]) } }
        }
    }

    /// Packed weights (FP32 and BF16) through `linear`, with bias, accumulation and strided x / y.
    func testPackedLinearMatchesNaive() throws {
        for precision in ComputePrecision.allCases {
            for (rows, inF, outF, trial) in [(1, 16, 384, 0), (9, 384, 1152, 1), (130, 96, 72, 2), (8, 1536, 384, 3)] {
                let ldx = inF + 3, ldy = outF + 5
                let x = randoms(rows * ldx, seed: UInt64(trial) + 100)
                let w = randoms(outF * inF, seed: UInt64(trial) + 200)
                let bias = randoms(outF, seed: UInt64(trial) + 300)
                let packed = try w.withUnsafeBufferPointer {
                    try PackedWeight(float32: $0.baseAddress!, rows: outF, cols: inF, precision: precision)
                }
                XCTAssertEqual(packed.precision, precision)
                for accumulate in [false, true] {
                    var y = randoms(rows * ldy, seed: UInt64(trial) + 400)
                    let y0 = y
                    x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in bias.withUnsafeBufferPointer { bp in
                        y.withUnsafeMutableBufferPointer { yp in
                            let m = WeightMatrix(rows: outF, cols: inF, dtype: .f32, base: UnsafeRawPointer(wp.baseAddress!), packed: packed)
                            linear(xp.baseAddress!, rows: rows, weight: m, bias: bp.baseAddress!, into: yp.baseAddress!,
                                   scratch: nil, ldx: ldx, ldy: ldy, accumulate: accumulate)
                        }
                    } } }
                    let q: (Float) -> Double = { precision == .bf16 ? Double(self.referenceBF16($0)) : Double($0) }
                    for r in 0..<rows {
                        for o in 0..<outF {
                            var acc = Double(bias[o]) + (accumulate ? Double(y0[r * ldy + o]) : 0), mag = abs(acc)
                            for i in 0..<inF { let t = q(x[r * ldx + i]) * q(w[o * inF + i]); acc += t; mag += abs(t) }
                            XCTAssertEqual(Double(y[r * ldy + o]), acc, accuracy: 2e-6 * mag,
                                           "\(precision) rows \(rows) in \(inF) out \(outF) acc \(accumulate) (\(r), \(o))")
                        }
                        for o in outF..<ldy { XCTAssertEqual(y[r * ldy + o], y0[r * ldy + o]) }
                    }
                }
            }
        }
    }

    /// Threads that call oneDNN build and run single-threaded primitives: their OpenMP thread count is 1.
    func testCallingThreadsUseOneOpenMPThread() {
        let saved = GEMMBackend.current
        GEMMBackend.current = .onednn
        defer { GEMMBackend.current = saved }
        let a = FloatBuffer(count: 64 * 64), c = (0..<4).map { _ in FloatBuffer(count: 64 * 64) }
        let counts = TypedBuffer<Int>(count: 4, repeating: -1)
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            gemm(transB: true, m: 64, n: 64, k: 64, a: a.pointer, lda: 64, b: a.pointer, ldb: 64, c: c[i].pointer, ldc: 64)
            counts.pointer[i] = DNNL.openMPThreadsOfThisThread
        }
        XCTAssertEqual(counts.array, [1, 1, 1, 1])
    }

    /// A thread that exits hands its oneDNN context (stream, memory objects, scratch) to the next new thread: five
    /// short-lived threads, one after another, each running a GEMM, build at most one context between them, and
    /// each still computes the right product with one OpenMP thread.
    func testExitedThreadsContextsAreReused() {
        let saved = GEMMBackend.current
        GEMMBackend.current = .onednn
        defer { GEMMBackend.current = saved }
        final class Job { let a = FloatBuffer(count: 32 * 32), c = FloatBuffer(count: 32 * 32); var omp = -1 }
        let job = Job()
        for i in 0..<(32 * 32) { job.a.pointer[i] = Float(i % 7) - 3 }
        var want = [Float](repeating: 0, count: 32 * 32)
        for r in 0..<32 { for col in 0..<32 { var acc: Float = 0; for k in 0..<32 { acc += job.a.pointer[r * 32 + k] * job.a.pointer[col * 32 + k] }; want[r * 32 + col] = acc } }
        let before = DNNL.threadContextCount
        for _ in 0..<5 {
            var thread = pthread_t()
            let box = Unmanaged.passRetained(job).toOpaque()
            XCTAssertEqual(pthread_create(&thread, nil, { p in
                let job = Unmanaged<Job>.fromOpaque(p!).takeRetainedValue()
                job.c.pointer.update(repeating: 0, count: 32 * 32)
                gemm(transB: true, m: 32, n: 32, k: 32, a: job.a.pointer, lda: 32, b: job.a.pointer, ldb: 32,
                     c: job.c.pointer, ldc: 32)
                job.omp = DNNL.openMPThreadsOfThisThread
                return nil
            }, box), 0)
            pthread_join(thread, nil)  // the thread's TLS destructor (which pools its context) has run
            XCTAssertEqual(Array(UnsafeBufferPointer(start: job.c.pointer, count: 32 * 32)), want, "exact: small integers")
            XCTAssertEqual(job.omp, 1)
        }
        XCTAssertLessThanOrEqual(DNNL.threadContextCount - before, 1, "contexts built by five successive threads")
    }
}
