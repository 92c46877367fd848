// The roofline the cost part's rates are divided by, measured once per run (or reused from an earlier run, or
// given on the command line) and recorded in results.json as `roofline`.
//
// It is the physical peak of the run's precision on the engine's worker threads (PhysicalPeak: register-only FMA /
// BF16 dot-product streams, best of 7 runs), a true ceiling: no model can exceed it, so a fraction above 1 means the
// peak was measured while the machine was busy (or the rate was) — a measurement problem, flagged, never shown as
// a plain percentage. CPUs without AVX-512 fall back to the best OpenBLAS sgemm rate on DiT layer shapes, which is
// an achievable rate rather than a ceiling. The sgemm rate is recorded beside the peak either way.
import Foundation
import Metrics
import Tensor

public struct RooflineRecord: Codable, Equatable, Sendable {
    /// "physical" (PhysicalPeak) or "sgemm" (best sgemm rate on DiT shapes).
    public var kind: String
    /// "fp32" or "bf16".
    public var precision: String
    public var threads: Int
    /// The ceiling, GFLOP/s (best of the repeats).
    public var gflops: Double
    /// Median of the repeats: far below `gflops` when the machine disturbed the measurement.
    public var medianGflops: Double?
    /// Best sgemm GFLOP/s over the DiT shapes on `threads` workers (what a well-fed GEMM achieves), for reference.
    public var sgemmGflops: Double?
    /// Where the number came from: "measured in this run", "given with --peak", "reused from <results dir>".
    public var source: String

    public var description: String {
        let what = kind == "physical" ? "physical \(precision.uppercased()) peak (register-only, best of 7)" : "OpenBLAS sgemm best rate (no AVX-512 peak available)"
        var s = String(format: "%@ %.1f GFLOP/s on %d thread(s), %@", what, gflops, threads, source)
        if let m = medianGflops { s += String(format: "; median of the repeats %.1f", m) }
        if let g = sgemmGflops, kind == "physical" { s += String(format: "; sgemm on DiT shapes reaches %.1f", g) }
        return s
    }

    /// The words for a rate above this roofline.
    func overWarning(rate: Double) -> String {
        String(format: "%.1f GFLOP/s is %.0f%% of the %.1f GFLOP/s roofline — above a ceiling is impossible: the roofline (%@) or this timing was disturbed",
               rate, 100 * rate / gflops, gflops, source)
    }

    /// A ceiling given on the command line.
    public static func given(gflops: Double, precision: String, threads: Int) -> RooflineRecord {
        RooflineRecord(kind: "physical", precision: precision, threads: threads, gflops: gflops, medianGflops: nil,
                       sgemmGflops: nil, source: "given with --peak")
    }

    /// The roofline recorded by an earlier run in `directory` (its results.json).
    public static func reused(from directory: URL) throws -> RooflineRecord {
        let doc = try ResultsStore.loadDocument(directory: directory)
        guard var r = doc.roofline else {
            throw ResultsError.badDocument(path: directory.appendingPathComponent("results.json").path,
                                           reason: "no roofline recorded (runs with a cost part write one from schema moebench-results/2 on)")
        }
        r.source = "reused from \(directory.path)"
        return r
    }

    /// Measures the physical peak of `precision` on `threads` threads, and the sgemm rate.
    public static func measure(precision: ComputePrecision, threads: Int) -> RooflineRecord {
        let sgemm = Roofline.best(threads: threads).gflops
        let p: PhysicalPeak.Precision = precision == .bf16 ? .bf16 : .fp32
        if case let .success(r) = PhysicalPeak.measure(p, threads: min(threads, PhysicalPeak.cpuCount), repeats: 7) {
            return RooflineRecord(kind: "physical", precision: p.rawValue, threads: r.threads, gflops: r.best, medianGflops: r.median,
                                  sgemmGflops: sgemm, source: "measured in this run")
        }
        return RooflineRecord(kind: "sgemm", precision: "fp32", threads: threads, gflops: sgemm, medianGflops: nil, sgemmGflops: sgemm,
                              source: "measured in this run")
    }
}

/// sgemm rates on the GEMM shapes of DiT layers.
public enum Roofline {
    /// GEMM shapes of DiT-S and DiT-B layers (M = tokens of 2 and 8 images, K = D, N = 4D or 8D).
    public static let ditShapes: [(m: Int, k: Int, n: Int)] = [(512, 384, 1536), (2048, 384, 3072), (512, 768, 3072), (2048, 768, 3072)]

    /// The best sgemm rate (GFLOP/s) over `ditShapes`, with each shape's own rate.
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

extension SuiteRunner {
    /// The run's roofline: the one already recorded in this run, else `rooflineOverride`, else measured now; recorded
    /// in results.json.
    func roofline(store: ResultsStore) throws -> RooflineRecord {
        if let r = store.document.roofline { return r }
        let r: RooflineRecord
        if let given = rooflineOverride {
            r = given
        } else {
            progress.say("cost: measuring the roofline (physical peak and sgemm)")
            r = RooflineRecord.measure(precision: precision, threads: Parallel.threads)
        }
        try store.setRoofline(r)
        return r
    }
}
