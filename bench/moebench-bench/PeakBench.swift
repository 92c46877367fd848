import ArgumentParser
import Foundation
import Metrics
import Tensor

/// `moebench-bench peak`: the physical FP32 and BF16 ceilings of this machine, per core and on all cores.
struct PeakBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peak",
        abstract: "The physical FP32 FMA and BF16 dot-product peaks of this CPU, per core and on all cores.",
        discussion: """
        Register-only instruction streams (CPeak): 24 vfmadd231ps zmm per loop trip on 12 independent accumulators \
        (32 FLOP each), and the same with vdpbf16ps zmm (64 FLOP each), one thread pinned per CPU. Prints the best \
        and the median of --repeats runs; the best is the ceiling other benchmarks report against. Prints "not \
        supported" for a precision the CPU lacks. Also prints the OpenBLAS kernel and, when OPENBLAS_CORETYPE forces \
        a kernel without AVX-512 on an AVX-512 CPU, a warning.
        """)

    @Option(help: "Runs per measurement (about 35 ms each for FP32, 17 ms for BF16), 1…1000.")
    var repeats: Int = 7

    @Flag(help: "Print JSON lines instead of the table.")
    var json = false

    func validate() throws {
        guard (1...1000).contains(repeats) else { throw ValidationError("--repeats must be between 1 and 1000, got \(repeats)") }
    }

    func run() throws {
        let peaks = MachinePeaks.measure(repeats: repeats)
        if json {
            for r in peaks.results {
                JSONLines.print(PeakRow(precision: r.precision.rawValue, threads: r.threads, bestGflops: r.best, medianGflops: r.median, supported: true))
            }
            for p in PhysicalPeak.Precision.allCases where !PhysicalPeak.supported(p) {
                JSONLines.print(PeakRow(precision: p.rawValue, supported: false))
            }
        } else {
            peaks.printHeader()
        }
    }
}

/// The physical peaks per core and on all cores, measured once per benchmark run, and the report lines about them.
struct MachinePeaks {
    var results: [PhysicalPeak.Result] = []
    var failures: [String] = []

    /// Best GFLOP/s of precision `p` with `threads` threads, if measured.
    func best(_ p: PhysicalPeak.Precision, threads: Int) -> Double? {
        results.first { $0.precision == p && $0.threads == threads }?.best
    }

    static func measure(repeats: Int = 7, allThreads: Int = PhysicalPeak.cpuCount) -> MachinePeaks {
        var m = MachinePeaks()
        for p in PhysicalPeak.Precision.allCases {
            for threads in Set([1, allThreads]).sorted() {
                switch PhysicalPeak.measure(p, threads: threads, repeats: repeats) {
                case let .success(r): m.results.append(r)
                case let .failure(f):
                    let text = "\(p.rawValue) peak: \(f)"
                    if !m.failures.contains(text) { m.failures.append(text) }
                }
            }
        }
        return m
    }

    func printHeader() {
        print("physical peak (CPeak, register-only; best / median of the runs, GFLOP/s):")
        for r in results {
            print(String(format: "  %@ %d thread%@: %7.1f / %7.1f", r.precision.rawValue.uppercased(), r.threads,
                         r.threads == 1 ? " " : "s", r.best, r.median))
        }
        for f in failures { print("  \(f)") }
        print("OpenBLAS \(BLASThreads.config), kernel \(BLASThreads.coreName)")
        if let w = BLASThreads.coreTypeWarning { print(w) }
    }
}

/// `moebench-bench threading`: the two threading models for oneDNN on DiT-MoE-S/2-8E2A GEMM shapes, and what an
/// OpenMP team costs the rest of the process after it finished.
struct ThreadingBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "threading",
        abstract: "oneDNN with its own OpenMP team versus the engine's workers calling single-threaded primitives.",
        discussion: """
        For each DiT-MoE-S/2-8E2A GEMM shape (batch 8: attention projections on 2048 rows, routed experts on 512 and \
        64 rows, the shared expert on 2048) and precision, the median GFLOP/s of y = x·Wᵀ on packed weights:
          workers   the rows split over --threads engine workers, each calling a single-threaded primitive
                    (the engine's model);
          openmp    one call from one thread, oneDNN running an OpenMP team of --threads.
        Then the CPU time the process burns in the 200 ms after a call, while it is idle: the spin of OpenMP \
        workers waiting for more work, which would take a core from the engine's other workers or the event loop.
        """)

    @Option(help: "Threads for both models (default: all cores).")
    var threads: Int?

    @Option(help: "Timed rounds per measurement; the median is reported.")
    var repeats: Int = 9

    func validate() throws {
        guard (1...1000).contains(repeats) else { throw ValidationError("--repeats must be between 1 and 1000, got \(repeats)") }
        guard threads == nil || (1...256).contains(threads!) else { throw ValidationError("--threads must be between 1 and 256, got \(threads!)") }
    }

    static let shapes: [(name: String, m: Int, k: Int, n: Int)] = [
        ("qkv", 2048, 384, 1152), ("proj", 2048, 384, 384), ("expert gate/up", 512, 384, 3072),
        ("expert down", 512, 1536, 384), ("expert gate/up, 64 rows", 64, 384, 3072), ("expert down, 64 rows", 64, 1536, 384),
        ("shared gate/up", 2048, 384, 1536), ("shared down", 2048, 768, 384),
    ]

    func run() throws {
        guard DNNL.isAvailable else { throw ValidationError("oneDNN has no CPU engine here") }
        let n = threads ?? ProcessInfo.processInfo.activeProcessorCount
        print("oneDNN \(DNNL.version), \(n) thread(s); GFLOP/s, median of \(repeats) rounds")
        print("shape                        M × K · K × N        precision   workers    openmp")
        for p in ComputePrecision.allCases where p == .fp32 || PhysicalPeak.hasAVX512BF16 {
            for s in Self.shapes {
                let a = FloatBuffer(count: s.m * s.k), w = FloatBuffer(count: s.n * s.k), c = FloatBuffer(count: s.m * s.n)
                for i in 0..<a.count { a.pointer[i] = Float(i % 97) / 97 }
                for i in 0..<w.count { w.pointer[i] = Float(i % 89) / 89 }
                let m = WeightMatrix(rows: s.n, cols: s.k, dtype: .f32, base: UnsafeRawPointer(w.pointer),
                                     packed: try PackedWeight(float32: w.pointer, rows: s.n, cols: s.k, precision: p))
                let flop = 2 * Double(s.m * s.n * s.k)
                Parallel.threads = n
                let workers = rate(flop: flop) {
                    parallelLinear(a.pointer, rows: s.m, weight: m, bias: nil, into: c.pointer, scratch: nil)
                }
                Parallel.threads = 1
                let team = rate(flop: flop) {
                    DNNL.withOpenMPThreads(n) { linear(a.pointer, rows: s.m, weight: m, bias: nil, into: c.pointer, scratch: nil) }
                }
                Parallel.threads = n
                print(s.name.padding(toLength: 28, withPad: " ", startingAt: 0)
                      + String(format: " %5d × %4d · %4d × %4d   ", s.m, s.k, s.k, s.n)
                      + p.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0) + String(format: " %7.1f   %7.1f", workers, team))
            }
        }
        // Idle CPU after a call under each model.
        let s = Self.shapes[0]
        let a = FloatBuffer(count: s.m * s.k), w = FloatBuffer(count: s.n * s.k), c = FloatBuffer(count: s.m * s.n)
        let m = WeightMatrix(rows: s.n, cols: s.k, dtype: .f32, base: UnsafeRawPointer(w.pointer),
                             packed: try PackedWeight(float32: w.pointer, rows: s.n, cols: s.k, precision: .fp32))
        Parallel.threads = n
        let idleWorkers = idleCPU { parallelLinear(a.pointer, rows: s.m, weight: m, bias: nil, into: c.pointer, scratch: nil) }
        Parallel.threads = 1
        let idleTeam = idleCPU {
            DNNL.withOpenMPThreads(n) { linear(a.pointer, rows: s.m, weight: m, bias: nil, into: c.pointer, scratch: nil) }
        }
        Parallel.threads = n
        let policy = ProcessInfo.processInfo.environment["OMP_WAIT_POLICY"] ?? "unset"
        print(String(format: "CPU time burnt in the 200 ms after a call (OMP_WAIT_POLICY %@): workers %.0f ms, openmp %.0f ms",
                     policy as NSString, idleWorkers, idleTeam))
    }

    func rate(flop: Double, _ call: () -> Void) -> Double {
        call()
        var rates: [Double] = []
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<4 { call() }
            rates.append(4 * flop / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) / 1e9)
        }
        return median(rates)
    }

    /// Milliseconds of process CPU time (user + system) during 200 ms of sleep right after `call`.
    func idleCPU(_ call: () -> Void) -> Double {
        call()
        func cpuMs() -> Double {
            var u = rusage()
            getrusage(RUSAGE_SELF.rawValue, &u)
            return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000 + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1000
        }
        let before = cpuMs()
        usleep(200_000)
        return cpuMs() - before
    }
}
