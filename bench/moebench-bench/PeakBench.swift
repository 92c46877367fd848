import ArgumentParser
import Foundation
import Tensor

/// `moebench-bench peak`: the physical FP32 and BF16 ceilings of this machine, per core and on all cores.
struct PeakBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peak",
        abstract: "The physical FP32 FMA and BF16 dot-product peaks of this CPU, per core and on all cores.",
        discussion: """
        Register-only instruction streams (CPeak): 24 vfmadd231ps zmm per loop trip on 12 independent accumulators
        (32 FLOP each), and the same with vdpbf16ps zmm (64 FLOP each), one thread pinned per CPU. Prints the best
        and the median of --repeats runs; the best is the ceiling other benchmarks report against. Prints "not
        supported" for a precision the CPU lacks. Also prints the OpenBLAS kernel and, when OPENBLAS_CORETYPE forces
        a kernel without AVX-512 on an AVX-512 CPU, a warning.
        """)

    @Option(help: "Runs per measurement (about 35 ms each for FP32, 17 ms for BF16).")
    var repeats: Int = 7

    @Flag(help: "Print JSON lines instead of the table.")
    var json = false

    func run() throws {
        let peaks = MachinePeaks.measure(repeats: repeats)
        if json {
            for r in peaks.results {
                print(#"{"precision": "\#(r.precision.rawValue)", "threads": \#(r.threads), "best_gflops": \#(r.best), "median_gflops": \#(r.median)}"#)
            }
            for p in PhysicalPeak.Precision.allCases where !PhysicalPeak.supported(p) {
                print(#"{"precision": "\#(p.rawValue)", "supported": false}"#)
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
