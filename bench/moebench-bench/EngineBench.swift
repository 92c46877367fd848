import ArgumentParser
import DiT
import Foundation
import Harness
import Metrics
import Tensor

/// Engine throughput per model × batch × precision × GEMM backend, against the physical peak and the achievable GEMM
/// rate of each backend, all measured in the same run.
struct EngineBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "DiT-MoE and dense DiT forward time and GFLOP/s per precision and GEMM backend, against the physical peak.",
        discussion: """
        Prints, in one run:
        1. the physical FP32 and BF16 peaks (CPeak, as `moebench-bench peak`), the OpenBLAS kernel (with a warning when OPENBLAS_CORETYPE forces one without AVX-512) and oneDNN's matmul implementations;
        2. the achievable GEMM rate of each backend × precision: the median over repeats of y = x·Wᵀ on four DiT layer shapes, rows split over --threads workers exactly as the engine splits them (oneDNN on packed weights);
        3. per model, batch, precision and backend: the median ms per forward over --iterations runs (after one warm-up; the configurations of one model and batch alternate run by run, so machine noise hits all of them alike), the true GFLOP/s (2 × (linear MACs + attention matmuls)), that rate as a fraction of the physical peak of its precision on all threads, and as a fraction of its backend's achievable GEMM rate.
        Weights are seeded random (shapes are what matter); BF16 converts them at load.
        """)

    @Option(parsing: .upToNextOption, help: "Models (built-in names).")
    var models: [String] = ["DiT-MoE-S/2-8E2A", "DiT-MoE-B/2-8E2A", "DiT-S/2", "DiT-B/2"]

    @Option(parsing: .upToNextOption, help: "Batch sizes (images per forward).")
    var batches: [Int] = [1, 2, 8]

    @Option(parsing: .upToNextOption, help: "GEMM backends: openblas, onednn.")
    var gemm: [String] = ["openblas", "onednn"]

    @Option(parsing: .upToNextOption, help: "Precisions: fp32, bf16 (bf16 runs on onednn only).")
    var precision: [String] = ["fp32", "bf16"]

    @Option(help: "Timed forwards per (model, batch, configuration); the median is reported.")
    var iterations: Int = 5

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?

    @Flag(help: "Also print the per-phase time split of each row.")
    var phases = false

    @Flag(help: "Print JSON lines instead of the table.")
    var json = false

    func validate() throws {
        guard !batches.isEmpty, batches.allSatisfy((1...1024).contains) else { throw ValidationError("--batches must be between 1 and 1024, got \(batches)") }
        guard (1...10_000).contains(iterations) else { throw ValidationError("--iterations must be between 1 and 10000, got \(iterations)") }
        guard threads == nil || (1...256).contains(threads!) else { throw ValidationError("--threads must be between 1 and 256, got \(threads!)") }
    }

    struct Setup: Hashable {
        let backend: GEMMBackend
        let precision: ComputePrecision
        var label: String { "\(precision.rawValue) \(backend.rawValue)" }
    }

    func run() throws {
        BLASThreads.set(1)
        Parallel.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        let backends = try gemm.map { try GEMMBackend.parse($0) }
        let precisions = try precision.map { text -> ComputePrecision in
            guard let p = ComputePrecision(rawValue: text) else { throw ValidationError("--precision: expected fp32 or bf16, got '\(text)'") }
            return p
        }
        var setups: [Setup] = []
        for p in precisions { for b in backends where p == .fp32 || b == .onednn { setups.append(Setup(backend: b, precision: p)) } }
        guard !setups.isEmpty else { throw ValidationError("--gemm/--precision: no runnable combination (bf16 needs onednn)") }

        let cpus = min(Parallel.threads, PhysicalPeak.cpuCount)
        let peaks = MachinePeaks.measure(repeats: 5, allThreads: cpus)
        var achievable: [Setup: (best: Double, perShape: [Double])] = [:]
        for s in setups { achievable[s] = GEMMRate.best(s.backend, s.precision, threads: Parallel.threads) }

        if json {
            for r in peaks.results {
                JSONLines.print(PeakRow(precision: r.precision.rawValue, threads: r.threads, bestGflops: r.best, medianGflops: r.median, supported: true))
            }
            for s in setups {
                JSONLines.print(GEMMRateRow(gemmRate: s.backend.rawValue, precision: s.precision.rawValue, threads: Parallel.threads,
                                            gflops: achievable[s]!.best))
            }
        } else {
            peaks.printHeader()
            if DNNL.isAvailable {
                print("oneDNN \(DNNL.version): matmul FP32 \(DNNL.implementation(.fp32)), BF16 \(DNNL.implementation(.bf16)); "
                      + "single-threaded primitives, one per engine worker")
            }
            print("\(Parallel.threads) worker(s)")
            print("achievable GEMM rate (median, y = x·Wᵀ, rows split over the workers), GFLOP/s:")
            for s in setups {
                let r = achievable[s]!
                let shapes = zip(GEMMRate.shapes, r.perShape).map { String(format: "%d×%d·%d×%d %.0f", $0.0.m, $0.0.k, $0.0.k, $0.0.n, $0.1) }
                print("  " + s.label.padding(toLength: 14, withPad: " ", startingAt: 0) + String(format: " best %6.1f   (", r.best)
                      + shapes.joined(separator: ", ") + ")")
            }
            print("model               batch  precision backend   ms/forward   true GFLOP   GFLOP/s   of peak   of GEMM rate")
        }
        for name in models {
            let config = try DiTConfig.named(name)
            // One random initialisation, packed per configuration.
            GEMMBackend.current = .openblas
            let stored = try DiTWeights(config: config, source: .random(seed: 1))
            var instances: [(Setup, DiTModel)] = []
            for s in setups {
                GEMMBackend.current = s.backend
                instances.append((s, try DiTModel(weights: DiTWeights(sharing: stored, precision: s.precision))))
            }
            for batch in batches {
                let image = config.inChannels * config.inputSize * config.inputSize
                var rng = SplitMix64(seed: 7)
                let x = FloatBuffer((0..<(batch * image)).map { _ in 2 * rng.nextUnitFloat() - 1 })
                let t = FloatBuffer([Float](repeating: 500, count: batch))
                let y = TypedBuffer<Int32>(count: batch, repeating: 0)
                for b in 0..<batch { y.pointer[b] = Int32(b * 97 % config.numClasses) }
                let out = FloatBuffer(count: batch * config.outChannels * config.inputSize * config.inputSize)
                var times: [Setup: [Double]] = [:]
                for (s, model) in instances {
                    GEMMBackend.current = s.backend
                    try model.forward(x: x.pointer, t: t.pointer, y: y.pointer, batch: batch, out: out.pointer)
                    model.profile = phases ? PhaseProfile() : nil
                }
                for _ in 0..<iterations {
                    for (s, model) in instances {
                        GEMMBackend.current = s.backend
                        let start = PhaseProfile.now()
                        try model.forward(x: x.pointer, t: t.pointer, y: y.pointer, batch: batch, out: out.pointer)
                        times[s, default: []].append(Double(PhaseProfile.now() - start) / 1e9)
                    }
                }
                let gflop = ModelCost(ModelShape(config)).trueFLOPs * Double(batch) / 1e9
                for (s, model) in instances {
                    let med = median(times[s]!)
                    let rate = gflop / med
                    let peak = peaks.best(s.precision == .bf16 ? .bf16 : .fp32, threads: cpus)
                    let gemmRate = achievable[s]!.best
                    if json {
                        JSONLines.print(EngineRow(model: name, batch: batch, precision: s.precision.rawValue, gemm: s.backend.rawValue,
                                                  ms: med * 1000, gflop: gflop, gflops: rate, fractionOfPeak: peak.map { rate / $0 },
                                                  fractionOfGemmRate: rate / gemmRate))
                    } else {
                        print(name.padding(toLength: 19, withPad: " ", startingAt: 0) + String(format: " %5d  ", batch)
                              + s.precision.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0) + " "
                              + s.backend.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
                              + String(format: " %11.1f   %10.2f   %7.1f   ", med * 1000, gflop, rate)
                              + (peak.map { String(format: "%6.0f%%", 100 * rate / $0) } ?? "   n/a")
                              + String(format: "   %11.0f%%", 100 * rate / gemmRate))
                    }
                    if phases, let p = model.profile {
                        let total = Double(p.totalNanoseconds)
                        let parts = PhaseProfile.Phase.allCases.compactMap { ph -> String? in
                            guard let ns = p.nanoseconds[ph], ns > 0 else { return nil }
                            return String(format: "%@ %.0f%%", ph.rawValue, 100 * Double(ns) / total)
                        }
                        print("    phases: " + parts.joined(separator: ", "))
                    }
                    model.profile = nil
                }
            }
        }
    }
}

/// The achievable GEMM rate of a backend and precision: y = x·Wᵀ on DiT layer shapes, rows split over the workers
/// as the engine splits them; oneDNN runs on weights packed as the engine packs them.
enum GEMMRate {
    /// (M = tokens of 2 and 8 images, K = D, N = a projection width) of DiT-S and DiT-B layers.
    static let shapes: [(m: Int, k: Int, n: Int)] = Roofline.ditShapes

    static func best(_ backend: GEMMBackend, _ precision: ComputePrecision, threads: Int, repeats: Int = 7) -> (best: Double, perShape: [Double]) {
        let rates = shapes.map { rate(backend, precision, m: $0.m, n: $0.n, k: $0.k, threads: threads, repeats: repeats) }
        return (rates.max() ?? .nan, rates)
    }

    /// Median GFLOP/s of `repeats` timings of 4 calls each (after one untimed round).
    static func rate(_ backend: GEMMBackend, _ precision: ComputePrecision, m: Int, n: Int, k: Int, threads: Int,
                     repeats: Int) -> Double {
        let savedThreads = Parallel.threads, savedBackend = GEMMBackend.current
        Parallel.threads = threads
        GEMMBackend.current = backend
        defer { Parallel.threads = savedThreads; GEMMBackend.current = savedBackend }
        let a = FloatBuffer(count: m * k), w = FloatBuffer(count: n * k), c = FloatBuffer(count: m * n)
        for i in 0..<a.count { a.pointer[i] = Float(i % 97) / 97 }
        for i in 0..<w.count { w.pointer[i] = Float(i % 89) / 89 }
        var matrix = WeightMatrix(rows: n, cols: k, dtype: .f32, base: UnsafeRawPointer(w.pointer))
        if backend == .onednn {
            matrix.packed = try? PackedWeight(float32: w.pointer, rows: n, cols: k, precision: precision)
            if matrix.packed == nil { return .nan }
        }
        var rates: [Double] = []
        for r in 0...repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<4 {
                parallelLinear(a.pointer, rows: m, weight: matrix, bias: nil, into: c.pointer, scratch: nil)
            }
            let s = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if r > 0 { rates.append(4 * 2 * Double(m * n * k) / s / 1e9) }
        }
        return median(rates)
    }
}

/// One `engine --json` line: a forward of `model` at `batch`, median of the timed iterations.
struct EngineRow: Encodable {
    var model: String
    var batch: Int
    var precision: String
    var gemm: String
    var ms: Double
    var gflop: Double
    var gflops: Double
    var fractionOfPeak: Double?
    var fractionOfGemmRate: Double
}
