import Foundation
import Tensor

/// Baselines measured in the same run as the numbers they qualify.
public enum Roofline {
    /// GEMM shapes of DiT-S and DiT-B layers (M = tokens of 2 and 8 images, K = D, N = 4D or 8D).
    public static let ditShapes: [(m: Int, k: Int, n: Int)] = [(512, 384, 1536), (2048, 384, 3072), (512, 768, 3072), (2048, 768, 3072)]

    /// The roofline: the best sgemm rate (GFLOP/s) over `ditShapes`, with each shape's own rate.
    public static func best(threads: Int) -> (gflops: Double, perShape: [Double]) {
        let rates = ditShapes.map { sgemm(m: $0.m, n: $0.n, k: $0.k, threads: threads, repeats: 7) }
        return (rates.max() ?? .nan, rates)
    }

    /// The sgemm rate (GFLOP/s) on `m×k · k×n`, rows split over `threads` single-threaded BLAS calls exactly as the
    /// engine splits its GEMMs; median of `repeats` timings of 4 calls each.
    public static func sgemm(m: Int = 512, n: Int = 1536, k: Int = 384, threads: Int, repeats: Int = 15) -> Double {
        let saved = Parallel.threads
        Parallel.threads = threads
        defer { Parallel.threads = saved }
        let a = FloatBuffer(count: m * k), w = FloatBuffer(count: n * k), c = FloatBuffer(count: m * n)
        for i in 0..<a.count { a.pointer[i] = Float(i % 97) / 97 }
        for i in 0..<w.count { w.pointer[i] = Float(i % 89) / 89 }
        var rates: [Double] = []
        for r in 0...repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<4 {
                parallelLinear(a.pointer, rows: m, inFeatures: k, weight: w.pointer, outFeatures: n, bias: nil, into: c.pointer)
            }
            let s = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if r > 0 { rates.append(4 * 2 * Double(m * n * k) / s / 1e9) }
        }
        return median(rates)
    }
}
