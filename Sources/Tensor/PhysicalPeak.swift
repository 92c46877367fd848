import CPeak
import Foundation

/// The physical compute ceiling of this CPU, measured by register-only instruction streams (`CPeak`): FP32 as
/// `vfmadd231ps zmm` (32 FLOP per instruction), BF16 as `vdpbf16ps zmm` (64 FLOP per instruction: 16 f32 lanes,
/// each the sum of two bf16 products added to the lane). No memory traffic, 12 independent accumulators, one
/// thread pinned per CPU of the process's affinity mask.
public enum PhysicalPeak {
    public enum Precision: String, CaseIterable, Sendable {
        case fp32, bf16
    }

    /// What the CPU and the OS support (CPUID and XCR0).
    public static var hasAVX512F: Bool { moe_peak_features() & 1 != 0 }
    public static var hasAVX512BF16: Bool { moe_peak_features() & 3 == 3 }

    public static func supported(_ p: Precision) -> Bool { p == .fp32 ? hasAVX512F : hasAVX512BF16 }

    /// CPUs in this process's affinity mask (the most threads `measure` accepts).
    public static var cpuCount: Int { Int(moe_peak_cpu_count()) }

    /// One measurement: `repeats` runs of about 35 ms (FP32) / 17 ms (BF16) each on `threads` pinned threads.
    /// `best` (GFLOP/s) is the ceiling to report against; `median` shows how much the shared machine disturbed it.
    public struct Result: Sendable {
        public let precision: Precision
        public let threads: Int
        public let best: Double
        public let median: Double
    }

    public enum Failure: Error, CustomStringConvertible {
        case notSupported(Precision)
        case badThreads(Int, available: Int)

        public var description: String {
            switch self {
            case .notSupported(.fp32): return "not supported: this CPU (or OS) has no AVX-512F"
            case .notSupported(.bf16): return "not supported: this CPU (or OS) has no AVX512_BF16 (vdpbf16ps)"
            case let .badThreads(n, available):
                return "threads must be in 1...\(available) (CPUs in this process's affinity mask), got \(n)"
            }
        }
    }

    public static func measure(_ p: Precision, threads: Int, repeats: Int = 7) -> Swift.Result<Result, Failure> {
        guard supported(p) else { return .failure(.notSupported(p)) }
        guard threads >= 1, threads <= cpuCount else { return .failure(.badThreads(threads, available: cpuCount)) }
        var rates: [Double] = []
        for _ in 0..<max(repeats, 1) {
            let r = p == .fp32 ? moe_peak_fp32_gflops(Int32(threads), 5_000_000)
                               : moe_peak_bf16_gflops(Int32(threads), 5_000_000)
            if r == -1 { return .failure(.notSupported(p)) }
            if r < 0 { return .failure(.badThreads(threads, available: cpuCount)) }
            rates.append(r)
        }
        rates.sort()
        return .success(Result(precision: p, threads: threads, best: rates.last!, median: rates[rates.count / 2]))
    }
}

extension BLASThreads {
    /// OpenBLAS kernels that use AVX-512.
    static let avx512Cores: Set<String> = ["skylakex", "cooperlake", "sapphirerapids"]

    /// A warning in words when `OPENBLAS_CORETYPE` makes OpenBLAS run a kernel without AVX-512 on a CPU that has it;
    /// nil otherwise.
    public static var coreTypeWarning: String? {
        guard let forced = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"], !forced.isEmpty else { return nil }
        let core = coreName
        guard PhysicalPeak.hasAVX512F, !avx512Cores.contains(core.lowercased()) else { return nil }
        return "warning: OPENBLAS_CORETYPE=\(forced) forces OpenBLAS's \(core) kernel (no AVX-512) on a CPU that has "
            + "AVX-512\(PhysicalPeak.hasAVX512BF16 ? " and AVX512_BF16" : ""); the OpenBLAS rates printed are that lesser "
            + "kernel's (unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE to let OpenBLAS pick its AVX-512 kernel)"
    }
}
