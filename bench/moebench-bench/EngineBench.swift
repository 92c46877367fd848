import ArgumentParser
import DiT
import Foundation
import Harness
import Metrics
import Tensor

/// Engine throughput against this machine's sgemm roofline, both measured in the same run.
struct EngineBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "DiT-MoE and dense DiT forward time and GFLOP/s against the measured sgemm roofline.",
        discussion: """
        Prints, in one run: the sgemm rate of this machine (OpenBLAS single-threaded per worker, rows split over
        --threads workers exactly as the engine splits its GEMMs) on a DiT-S-sized shape, then for each model and
        batch size the median ms per forward over --iterations runs (after one warm-up), the true GFLOP/s by the
        formula of spec ditmoe §2.4 (2 × linear MACs + attention matmuls), and that rate as a fraction of the
        roofline. Weights are seeded random (shapes are what matter).
        """)

    @Option(parsing: .upToNextOption, help: "Models (built-in names).")
    var models: [String] = ["DiT-MoE-S/2-8E2A", "DiT-MoE-B/2-8E2A", "DiT-S/2", "DiT-B/2"]

    @Option(parsing: .upToNextOption, help: "Batch sizes (images per forward).")
    var batches: [Int] = [1, 2, 8]

    @Option(help: "Timed forwards per (model, batch); the median is reported.")
    var iterations: Int = 5

    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?

    @Flag(help: "Also print the per-phase time split of each row.")
    var phases = false

    @Flag(help: "Print JSON lines instead of the table.")
    var json = false

    func run() throws {
        BLASThreads.set(1)
        Parallel.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        let peaks = MachinePeaks.measure(repeats: 5, allThreads: min(Parallel.threads, PhysicalPeak.cpuCount))
        let fp32Peak = peaks.best(.fp32, threads: min(Parallel.threads, PhysicalPeak.cpuCount))
        let (roof, perShape) = Roofline.best(threads: Parallel.threads)
        let roof1 = Roofline.best(threads: 1).gflops
        if json {
            print(#"{"roofline_gflops": \#(roof), "roofline_1thread_gflops": \#(roof1), "threads": \#(Parallel.threads)}"#)
        } else {
            peaks.printHeader()
            print("\(Parallel.threads) worker(s)")
            let shapes = zip(Roofline.ditShapes, perShape).map { String(format: "%d×%d·%d×%d %.1f", $0.0.m, $0.0.k, $0.0.k, $0.0.n, $0.1) }
            print(String(format: "sgemm roofline (best median over DiT shapes): %.1f GFLOP/s with %d workers, %.1f with 1", roof,
                         Parallel.threads, roof1))
            print("  per shape with \(Parallel.threads) workers: " + shapes.joined(separator: ", "))
            print("model               batch   ms/forward   true GFLOP   GFLOP/s   of roofline   of FP32 peak")
        }
        for name in models {
            let config = try DiTConfig.named(name)
            let model = try DiTModel(config: config, source: .random(seed: 1))
            for batch in batches {
                let image = config.inChannels * config.inputSize * config.inputSize
                var rng = SplitMix64(seed: 7)
                let x = FloatBuffer((0..<(batch * image)).map { _ in 2 * rng.nextUnitFloat() - 1 })
                let t = FloatBuffer([Float](repeating: 500, count: batch))
                let y = TypedBuffer<Int32>(count: batch, repeating: 0)
                for b in 0..<batch { y.pointer[b] = Int32(b * 97 % config.numClasses) }
                let out = FloatBuffer(count: batch * config.outChannels * config.inputSize * config.inputSize)
                try model.forward(x: x.pointer, t: t.pointer, y: y.pointer, batch: batch, out: out.pointer)
                model.profile = PhaseProfile()
                var times: [Double] = []
                for _ in 0..<iterations {
                    let start = PhaseProfile.now()
                    try model.forward(x: x.pointer, t: t.pointer, y: y.pointer, batch: batch, out: out.pointer)
                    times.append(Double(PhaseProfile.now() - start) / 1e9)
                }
                let med = median(times)
                let gflop = ModelCost(ModelShape(config)).trueFLOPs * Double(batch) / 1e9
                let rate = gflop / med
                if json {
                    print(#"{"model": "\#(name)", "batch": \#(batch), "ms": \#(med * 1000), "gflop": \#(gflop), "gflops": \#(rate), "fraction": \#(rate / roof), "fraction_of_fp32_peak": \#(fp32Peak.map { rate / $0 } ?? .nan)}"#)
                } else {
                    print(String(format: "%-19@ %5d   %10.1f   %10.2f   %7.1f   %9.0f%%   %@", name as NSString, batch, med * 1000, gflop, rate,
                                 100 * rate / roof, fp32Peak.map { String(format: "%11.0f%%", 100 * rate / $0) } ?? "  (no peak)"))
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
