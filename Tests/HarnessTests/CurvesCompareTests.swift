import Foundation
import XCTest
@testable import Harness
import Metrics
import Tensor
import Training

/// `moebench compare` on the curves and load-balance parts of two synthetic runs written here (the cost part is
/// Fixtures/compare-a's in both, so it never regresses):
/// - testbed rows (no samples: intervals from the rows): "kar1 vanilla b10" is 1.5× worse in B, the rest equal;
/// - model "moe" rows with stored samples (paired bootstrap): "kar1 vanilla b10" the same real digits in both,
///   "em vanilla b10" the same digits plus N(0, 0.2²) pixel noise in B (a clear FID-digits regression);
/// - load balance: expert balancedness 0.75 in B against 0.93 in A.
final class CurvesCompareTests: XCTestCase {
    var fixtures: URL { Bundle.module.url(forResource: "Fixtures", withExtension: nil)! }
    static var scratch: URL?
    var dirs: (a: URL, b: URL) {
        get throws {
            if let s = Self.scratch { return (s.appendingPathComponent("a"), s.appendingPathComponent("b")) }
            let s = FileManager.default.temporaryDirectory.appendingPathComponent("curves-compare-\(UUID().uuidString)")
            try makeRun(s.appendingPathComponent("a"), worse: false)
            try makeRun(s.appendingPathComponent("b"), worse: true)
            Self.scratch = s
            return (s.appendingPathComponent("a"), s.appendingPathComponent("b"))
        }
    }

    override class func tearDown() {
        if let s = scratch { try? FileManager.default.removeItem(at: s) }
        super.tearDown()
    }

    func row(_ integrator: String, dlg: Bool = false, budget: Int, fd: Double, lower: Double?, upper: Double?,
             source: String = "testbed(test)", samples: Int = 100) -> CurveRow {
        CurveRow(source: source, integrator: integrator, dlg: dlg, budget: budget, nfe: Double(budget), step: "N=\(budget / 2)", nSkip: nil,
                 epsilon: nil, skipFraction: nil, fd: fd, samples: samples, seed: 0, chains: 10, meanStartSigma: nil, warmupNFE: nil,
                 seconds: 1, fidDigits: nil, fidDigitsLower: nil, fidDigitsUpper: nil, fdLower: lower, fdUpper: upper)
    }

    /// n = 100 train digits in [0, 1] pixels, seeded; with `noise`, plus N(0, noise²) per pixel, clamped.
    func digits(noise: Float) throws -> [Float] {
        let train = try DigitsDataset.bundled().split().train
        var rng = SplitMix64(seed: 7)
        var out: [Float] = []
        for i in 0..<100 {
            for p in 0..<64 {
                var v = (train.pixels[i * 64 + p] + 1) / 2
                if noise > 0 {
                    let u1 = Float(rng.next() >> 40 + 1) / Float(1 << 24), u2 = Float(rng.next() >> 40) / Float(1 << 24)
                    v += noise * (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
                }
                out.append(min(max(v, 0), 1))
            }
        }
        return out
    }

    func makeRun(_ dir: URL, worse: Bool) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var doc = try ResultsStore.loadDocument(directory: fixtures.appendingPathComponent("compare-a"))
        let loads: [[Double]] = worse ? [[100, 100, 100, 150], [100, 100, 100, 150]] : [[100, 100, 100, 110], [100, 100, 100, 110]]
        doc.parts.append(ResultPart(id: "load_balance", title: "Load balance", summary: [], tables: [], figures: [],
                                    data: .object(["report": try JSONValue.from(LoadBalanceReport(loads: loads))])))
        try JSONEncoder().encode(doc).write(to: dir.appendingPathComponent("results.json"))

        let testbed = try CurveStore(directory: dir.appendingPathComponent("curves").path)
        try testbed.append(row("floor", budget: 0, fd: 0.02, lower: 0.01, upper: 0.03))
        try testbed.append(row("kar1", budget: 10, fd: worse ? 1.5 : 1.0, lower: worse ? 1.35 : 0.9, upper: worse ? 1.65 : 1.1))
        try testbed.append(row("kar1", dlg: true, budget: 10, fd: 0.25, lower: 0.2, upper: 0.3))
        try testbed.append(row(worse ? "rk45" : "pf", budget: 20, fd: 0.1, lower: 0.05, upper: 0.2))

        let fid = try DigitsFID.bundled()
        let modelDir = dir.appendingPathComponent("curves/moe")
        let model = try CurveStore(directory: modelDir.path)
        for (integrator, noise) in [("kar1", Float(0)), ("em", worse ? Float(0.2) : 0)] {
            let samples = try digits(noise: noise)
            let report = try fid.evaluate(samples.map { 2 * $0 - 1 }, bootstrap: 50, seed: 0)
            var r = row(integrator, budget: 10, fd: report.pixelFD.value / 4, lower: report.pixelFD.lower / 4, upper: report.pixelFD.upper / 4,
                        source: "model=moe,cfg=none,sigma_max=50,tau=0.01")
            r.fidDigits = report.fidDigits.value
            r.fidDigitsLower = report.fidDigits.lower; r.fidDigitsUpper = report.fidDigits.upper
            try model.append(r)
            try CellSamples.write(row: r, samples: samples, side: 8, directory: modelDir.path)
        }
    }

    func cell(_ c: RunComparison, _ name: String) throws -> ComparedCell {
        try XCTUnwrap(c.cells.first { $0.cell == name }, "no cell \(name) in \(c.cells.map(\.cell))")
    }

    /// Identical runs: every curves ratio is exactly 1, the paired cells' interval is [1, 1], nothing is flagged.
    func testIdenticalRunsAreNotFlagged() throws {
        let (a, _) = try dirs
        let c = try RunComparison.load(a, a, threshold: 0.05)
        XCTAssertTrue(c.regressions.isEmpty, "\(c.regressions)")
        let curves = c.cells.filter { $0.part == "curves" }
        XCTAssertEqual(curves.count, 6)
        for x in curves {
            XCTAssertEqual(x.ratio, 1, x.cell)
            XCTAssertEqual(x.verdict, "same", x.cell)
            XCTAssertTrue(try XCTUnwrap(x.interval, x.cell).contains(1), x.cell)
        }
        let paired = try cell(c, "moe em vanilla b10 s0")
        XCTAssertEqual(paired.method, "paired")
        XCTAssertEqual(paired.unit, "FID-digits")
        XCTAssertEqual(paired.interval?.lower, 1)
        XCTAssertEqual(paired.interval?.upper, 1)
        XCTAssertEqual(try cell(c, "testbed kar1 vanilla b10 s0").method, "rows")
        XCTAssertEqual(try cell(c, "expert balancedness").verdict, "same")
    }

    /// The known regressions are flagged, by the paired bootstrap (model) and from the rows' intervals (testbed);
    /// unchanged cells are not; cells of one run only are listed; load balance is judged on balancedness.
    func testKnownRegressionsAreFlagged() throws {
        let (a, b) = try dirs
        let c = try RunComparison.load(a, b, threshold: 0.05, fdThreshold: 0.10)
        let testbed = try cell(c, "testbed kar1 vanilla b10 s0")
        XCTAssertEqual(testbed.ratio, 1.5, accuracy: 1e-12)
        XCTAssertEqual(testbed.verdict, "regression")
        XCTAssertEqual(testbed.aNFE, 10)
        // Closed form of the rows' interval: both rows are −10%, +10% around their value, so each end of B/A
        // combines ln 1.1 (one side's upper) and ln(1/0.9) (the other's lower) in quadrature.
        let half = (pow(log(1.1), 2) + pow(log(1 / 0.9), 2)).squareRoot()
        XCTAssertEqual(try XCTUnwrap(testbed.interval).upper, 1.5 * exp(half), accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(testbed.interval).lower, 1.5 * exp(-half), accuracy: 1e-9)
        let noisy = try cell(c, "moe em vanilla b10 s0")
        XCTAssertEqual(noisy.method, "paired")
        XCTAssertEqual(noisy.verdict, "regression")
        XCTAssertGreaterThan(try XCTUnwrap(noisy.interval).lower, 1.1)
        XCTAssertTrue(try XCTUnwrap(noisy.interval).contains(noisy.ratio))
        for same in ["moe kar1 vanilla b10 s0", "testbed kar1 DLG b10 s0", "testbed reference s0"] {
            XCTAssertEqual(try cell(c, same).verdict, "same", same)
        }
        XCTAssertEqual(c.onlyInA, ["curves: testbed pf vanilla b20 s0"])
        XCTAssertEqual(c.onlyInB, ["curves: testbed rk45 vanilla b20 s0"])
        let balance = try cell(c, "expert balancedness")
        XCTAssertEqual(balance.verdict, "regression")
        XCTAssertEqual(balance.ratio, (450.0 / 600) / (410.0 / 440), accuracy: 1e-12)
        XCTAssertEqual(try cell(c, "mean MaxVio").verdict, "info")
        XCTAssertEqual(Set(c.regressions(above: 0.2, group: "curves").map(\.cell)), ["testbed kar1 vanilla b10 s0", "moe em vanilla b10 s0"])
        XCTAssertEqual(c.regressions(above: 0.2, group: "cost").map(\.cell), ["expert balancedness"])
        XCTAssertEqual(c.regressions(above: 0.5, group: "cost").count, 0)
        // A threshold above the change leaves the testbed cell "same".
        XCTAssertEqual(try cell(try RunComparison.load(a, b, threshold: 0.05, fdThreshold: 0.6), "testbed kar1 vanilla b10 s0").verdict, "same")

        let md = c.markdown()
        XCTAssertTrue(md.contains("## Sample quality"))
        XCTAssertTrue(md.contains("## Load balance"))
        for line in md.split(separator: "\n") where line.hasPrefix("|") { XCTAssertLessThanOrEqual(line.count, 100, String(line)) }
        let csv = c.csv().split(separator: "\n")
        XCTAssertEqual(csv[0], Substring(RunComparison.csvHeader.joined(separator: ",")))
        XCTAssertTrue(csv.contains { $0.hasPrefix("curves,moe em vanilla b10 s0,FID-digits,") && $0.hasSuffix(",10,10,paired,false,regression") })
        let back = try RunComparison.jsonDecoder.decode(RunComparison.self, from: Data(try c.json().utf8))
        XCTAssertEqual(back.cells, c.cells)
    }

    /// A stored value the samples do not reproduce (another feature net) falls back to the rows' intervals.
    func testUnreproducedSamplesFallBackToRows() throws {
        let (a, _) = try dirs
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("curves-compare-edit-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: copy) }
        try FileManager.default.copyItem(at: a, to: copy)
        let path = copy.appendingPathComponent("curves/moe/curves.jsonl")
        var lines = try String(contentsOf: path, encoding: .utf8).split(separator: "\n").map(String.init)
        var r = try JSONDecoder().decode(CurveRow.self, from: Data(lines[1].utf8))
        r.fidDigits! *= 1.01
        let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
        lines[1] = String(decoding: try enc.encode(r), as: UTF8.self)
        try (lines.joined(separator: "\n") + "\n").write(to: path, atomically: true, encoding: .utf8)
        let c = try RunComparison.load(a, copy, threshold: 0.05)
        let x = try cell(c, "moe em vanilla b10 s0")
        XCTAssertEqual(x.method, "rows")
        XCTAssertTrue(x.note?.contains("run B's samples give FID-digits") == true, x.note ?? "no note")
        XCTAssertEqual(x.verdict, "same")
    }

    /// The bootstrap's Fréchet distance against a fixed reference equals Metrics' FrechetDistance (which takes the
    /// square root of the other covariance) to round-off.
    func testFixedReferenceFrechetMatchesFrechetDistance() throws {
        var rng = SplitMix64(seed: 3)
        func draw(_ n: Int, _ d: Int, shift: Float) -> [Float] { (0..<(n * d)).map { i in Float(rng.next() % 1000) / 500 - 1 + shift * Float(i % d) / Float(d) } }
        let reference = GaussianMoments(samples: draw(300, 16, shift: 0), dimension: 16)
        var f = try FixedReferenceFrechet(reference: reference)
        for shift in [Float(0), 0.3, 2] {
            let x = draw(100, 16, shift: shift)
            let want = try FrechetDistance.samples(x, dimension: 16, against: reference)
            XCTAssertEqual(try f.distance(x), want, accuracy: 1e-9 * max(1, want), "shift \(shift)")
        }
    }

    /// The rows' interval: none without intervals, unbounded (no interval, at most "unclear") when A's reaches 0.
    func testRowsIntervalEdges() {
        XCTAssertNil(CurvesComparison.rowsInterval(a: (1, nil, nil), b: (1, 0.9, 1.1)).interval)
        let unbounded = CurvesComparison.rowsInterval(a: (0.01, 0, 0.03), b: (0.05, 0.04, 0.06))
        XCTAssertNil(unbounded.interval)
        XCTAssertTrue(unbounded.unbounded)
        XCTAssertEqual(RunComparison.verdict(ratio: 5, interval: nil, threshold: 0.1, unbounded: true), "unclear")
        XCTAssertEqual(CurvesComparison.rowsInterval(a: (1, 0.5, 2), b: (1, 0, 2)).interval?.lower, 0)
    }

    /// The command line: identical runs exit 0 even with both limits at 0; --fail-above-fd and --fail-above each
    /// exit 2 on their own group's regressions only.
    func testCommandExitCodes() throws {
        let (a, b) = try dirs
        let moebench = try MoebenchBinary()
        func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) { try moebench.run(["compare"] + args) }
        XCTAssertEqual(try run([a.path, a.path, "--fail-above", "0", "--fail-above-fd", "0"]).status, 0)
        let fd = try run([a.path, b.path, "--fail-above-fd", "0.2"])
        XCTAssertEqual(fd.status, 2)
        XCTAssertTrue(fd.err.contains("sample-quality") && fd.err.contains("moe em vanilla b10 s0"), fd.err)
        XCTAssertTrue(fd.out.contains("**REGRESSION**"))
        XCTAssertEqual(try run([a.path, b.path, "--fail-above-fd", "20"]).status, 0)
        XCTAssertEqual(try run([a.path, b.path, "--fail-above", "0.1"]).status, 2)   // balancedness 0.93 → 0.75
        XCTAssertEqual(try run([a.path, b.path, "--fail-above", "0.5"]).status, 0)
        XCTAssertEqual(try run([a.path, b.path, "--fd-threshold", "-1"]).status, 64)
    }
}
