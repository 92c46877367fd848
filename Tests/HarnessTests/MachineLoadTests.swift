import Foundation
import XCTest
@testable import Harness

/// Load snapshots from /proc text, and the busy verdict in closed form.
final class MachineLoadTests: XCTestCase {
    let stat0 = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n"
    // 10 s later at 100 ticks/s on 2 cores (2000 ticks): +1200 user/system, +600 idle, +200 steal.
    let stat1 = "cpu  1100 0 250 1400 50 0 0 200 0 0\n"

    func snapshot(_ stat: String, load1: Double, selfTicks: (Int, Int), at t: Double) -> LoadSnapshot {
        let selfStat = "4242 (moe bench) R 1 2 3 0 -1 4194304 104 0 0 0 \(selfTicks.0) \(selfTicks.1) 0 0 20 0 1 0"
        return LoadSnapshot.parse(loadavg: "\(load1) 0.50 0.25 3/121 11611\n", stat: stat, selfStat: selfStat, monotonicSeconds: t)!
    }

    /// The `cpu` line's first 8 fields are summed (user nice system idle iowait irq softirq steal); idle = idle +
    /// iowait; /proc/self/stat's utime and stime are fields 14 and 15 even when the command name holds a space.
    func testParseAndVerdict() {
        let b = snapshot(stat0, load1: 0.2, selfTicks: (10, 0), at: 100)
        XCTAssertEqual(b.totalTicks, 1000)
        XCTAssertEqual(b.idleTicks, 850)
        XCTAssertEqual(b.processTicks, 10)
        XCTAssertEqual(b.load1, 0.2)
        let a = snapshot(stat1, load1: 1.9, selfTicks: (410, 200), at: 110)
        XCTAssertEqual(a.totalTicks, 3000)
        XCTAssertEqual(a.stealTicks, 200)
        // Δtotal 2000, Δidle 600, Δsteal 200, Δself 600: others (2000 − 600 − 200 − 600) / (10 s · 100) = 0.6 cores
        // (below 0.5 × 2); steal 200 / 2000 = 10% > 5%.
        let load = PartLoad(before: b, after: a, cores: 2, firstPart: true, ticksPerSecond: 100)
        XCTAssertEqual(load.otherCores!, 0.6, accuracy: 1e-12)
        XCTAssertEqual(load.stealFraction!, 0.1, accuracy: 1e-12)
        XCTAssertTrue(load.busy)
        XCTAssertEqual(load.warnings.count, 1)
        XCTAssertTrue(load.warnings[0].contains("stolen"))
        // Another part on a busier machine: others above 0.5 × 2 cores; the load before a later part is the suite's own.
        let a2 = snapshot(stat1, load1: 3, selfTicks: (110, 0), at: 110)
        let busy = PartLoad(before: snapshot(stat0, load1: 3, selfTicks: (10, 0), at: 100), after: a2, cores: 2, firstPart: false,
                            ticksPerSecond: 100)
        XCTAssertEqual(busy.otherCores!, 1.1, accuracy: 1e-12)   // (2000 − 600 − 200 − 100) / 1000
        XCTAssertEqual(busy.warnings.count, 2)
        XCTAssertTrue(busy.warnings[0].contains("1.10 of 2 cores"))
        XCTAssertFalse(busy.warnings.joined().contains("load average"))
        XCTAssertTrue(PartLoad(before: snapshot(stat0, load1: 3, selfTicks: (0, 0), at: 0), after: snapshot(stat0, load1: 3, selfTicks: (0, 0), at: 1),
                               cores: 2, firstPart: true, ticksPerSecond: 100).warnings.contains { $0.contains("load average was 3.00") })
        XCTAssertNil(LoadSnapshot.parse(loadavg: "x", stat: stat0, selfStat: "1 (a) R", monotonicSeconds: 0))
        XCTAssertNotNil(LoadSnapshot.take())
    }

    /// A rate above the roofline is flagged in words; a roofline reused from a run without one names its file.
    func testRooflineWordsAndReuseErrors() throws {
        let r = RooflineRecord.given(gflops: 100, precision: "fp32", threads: 2)
        XCTAssertTrue(r.overWarning(rate: 110).contains("110% of the 100.0 GFLOP/s roofline"))
        XCTAssertTrue(r.description.contains("given with --peak"))
        let fixture = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("sample-results")
        XCTAssertThrowsError(try RooflineRecord.reused(from: fixture)) { e in
            XCTAssertTrue("\(e)".contains("sample-results/results.json"), "\(e)")
        }
    }
}
