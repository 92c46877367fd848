import Foundation
import XCTest
@testable import Tensor

/// The CPUID checks of CPeak against the kernel's own view of the CPU (/proc/cpuinfo flags), and the refusal paths.
/// No timing is asserted (performance lives in bench/).
final class PhysicalPeakTests: XCTestCase {
    func cpuinfoFlags() throws -> Set<Substring> {
        let text = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else {
            throw XCTSkip("/proc/cpuinfo has no flags line")
        }
        return Set(line.split(separator: ":", maxSplits: 1).last!.split(separator: " "))
    }

    func testFeaturesAgreeWithProcCpuinfo() throws {
        let flags = try cpuinfoFlags()
        XCTAssertEqual(PhysicalPeak.hasAVX512F, flags.contains("avx512f"))
        XCTAssertEqual(PhysicalPeak.hasAVX512BF16, flags.contains("avx512f") && flags.contains("avx512_bf16"))
    }

    func testUnsupportedOrBadThreadCountIsReportedNotCrashed() {
        for p in PhysicalPeak.Precision.allCases {
            switch PhysicalPeak.measure(p, threads: PhysicalPeak.cpuCount + 1, repeats: 1) {
            case .success: XCTFail("\(p): more threads than CPUs must be refused")
            case let .failure(f):
                if PhysicalPeak.supported(p) {
                    guard case .badThreads = f else { return XCTFail("\(p): expected badThreads, got \(f)") }
                } else {
                    XCTAssertTrue(f.description.hasPrefix("not supported"), "\(p): \(f)")
                }
            }
        }
    }

    /// One short run per precision gives a positive rate when supported (the value itself is a benchmark figure).
    func testSupportedPrecisionsMeasureSomething() {
        for p in PhysicalPeak.Precision.allCases where PhysicalPeak.supported(p) {
            guard case let .success(r) = PhysicalPeak.measure(p, threads: 1, repeats: 1) else { return XCTFail("\(p)") }
            XCTAssertGreaterThan(r.best, 0)
            XCTAssertEqual(r.threads, 1)
        }
    }
}
