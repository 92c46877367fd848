import Foundation
import XCTest
import Diffusion
@testable import Harness

final class CurvesTests: XCTestCase {
    /// Budgets map to step parameters whose planned NFE (+1 Tweedie, + n_skip for DLG) equals the budget, for every
    /// fixed-step integrator and budget ≥ 6 (odd vanilla KAR budgets round down by one).
    func testBudgetsMapToPlannedNFE() {
        for kind in IntegratorKind.allCases where kind != .rk45 {
            for b in [6, 10, 11, 20, 50, 200] {
                let v = CurveBudgets.vanilla(kind, budget: b)
                let vn = v.integrator.plannedNFE! + 1
                if kind == .kar1 || kind == .kar2 { XCTAssertEqual(vn, b - b % 2, "\(kind) \(b)") } else { XCTAssertEqual(vn, b, "\(kind) \(b)") }
                let g = CurveBudgets.dlg(kind, budget: b, defaults: DLGBudgetDefaults())
                XCTAssertEqual(g.nSkip! + g.integrator.plannedNFE! + 1, b, "DLG \(kind) \(b)")
                XCTAssertGreaterThanOrEqual(g.nSkip!, 1)
            }
        }
        XCTAssertEqual(CurveBudgets.rk45Tolerance(integratorBudget: 10), 1e-1, accuracy: 1e-15)
        XCTAssertEqual(CurveBudgets.rk45Tolerance(integratorBudget: 200), 1e-5, accuracy: 1e-18)
    }

    /// A tiny sweep writes rows with counted NFE, a floor per seed, CSV and an SVG; a second run resumes (adds
    /// nothing) and a malformed jsonl line is reported with file and line.
    func testSweepWritesResumesAndPlots() throws {
        let dir = NSTemporaryDirectory() + "curves-test-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = TestbedScoreSource(spec: LowRankMixtureSpec(dimension: 4, components: 2, rank: 1, seed: 1))
        var config = CurveSweepConfig()
        config.integrators = [.kar1, .em]
        config.budgets = [6, 10]
        config.samples = 20
        config.chains = 10
        config.seeds = [0, 1]
        let store = try CurveStore(directory: dir)
        let rows = try CurveSweep(source: source, config: config, store: store).run()
        XCTAssertEqual(rows.count, 2 * 2 * 2 * 2 + 2)
        for r in rows where r.integrator == "kar1" && !r.dlg { XCTAssertEqual(r.nfe, Double(r.budget)) }
        for r in rows where r.dlg { XCTAssertEqual(r.nfe, Double(r.budget)); XCTAssertNotNil(r.meanStartSigma) }
        XCTAssertEqual(rows.filter { $0.integrator == "floor" }.count, 2)
        XCTAssertTrue(rows.allSatisfy { $0.fd.isFinite && $0.fd >= 0 })
        // Every row (cells and reference rows) has a bootstrap interval over its samples, never below 0.
        for r in rows {
            let lo = try XCTUnwrap(r.fdLower), hi = try XCTUnwrap(r.fdUpper)
            XCTAssertGreaterThanOrEqual(lo, 0)
            XCTAssertLessThanOrEqual(lo, hi)
        }

        let again = try CurveStore(directory: dir)
        XCTAssertEqual(again.rows.count, rows.count)
        let rerun = try CurveSweep(source: source, config: config, store: again).run()
        XCTAssertEqual(rerun.count, rows.count)
        XCTAssertEqual(try CurveStore(directory: dir).rows.count, rows.count)
        let csv = try String(contentsOfFile: dir + "/curves.csv", encoding: .utf8)
        XCTAssertEqual(csv.split(separator: "\n").count, rows.count + 1)

        let summary = CurveSummary(rows: rows)
        XCTAssertEqual(summary.points.count, 8)
        XCTAssertEqual(summary.floor?.seeds, 2)
        for p in summary.points { XCTAssertGreaterThanOrEqual(try XCTUnwrap(p.fd.lower), 0) }
        XCTAssertTrue(summary.table().contains("finite-sample reference"))
        XCTAssertFalse(summary.table().contains("beat"))
        let svg = summary.figure(title: "t").svg()
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"))
        XCTAssertTrue(svg.contains("with DLG") && svg.contains("reference: exact draws at this n"))
        // One panel per integrator plus the best-sampler panel; NFE on a log axis everywhere; DLG's warm-up-inclusive
        // points as hollow triangles.
        XCTAssertTrue(svg.contains("Best sampler per NFE"))
        XCTAssertEqual(svg.components(separatedBy: "NFE per sample (log)").count - 1, 3)
        XCTAssertTrue(svg.contains("DLG incl. warm-up") && svg.contains("<polygon"))

        try "{not json}\n".write(toFile: dir + "/curves.jsonl", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CurveStore(directory: dir)) { e in
            XCTAssertTrue("\(e)".contains("curves.jsonl:1"), "\(e)")
        }
    }

    /// Seeds combine in closed form: FD 2 [1, 4] and 4 [2, 7] → mean 3, lower 3 − √(1² + 2²)/2, upper
    /// 3 + √(2² + 3²)/2 (1e-12); one seed keeps its interval; an interval reaching 0 keeps the lower end at ≥ 0.
    func testFDSummaryCombinesSeedIntervals() {
        let s = FDSummary([(2, 1, 4), (4, 2, 7)])
        XCTAssertEqual(s.mean, 3, accuracy: 1e-12)
        XCTAssertEqual(s.lower!, 3 - 5.0.squareRoot() / 2, accuracy: 1e-12)
        XCTAssertEqual(s.upper!, 3 + 13.0.squareRoot() / 2, accuracy: 1e-12)
        XCTAssertEqual(FDSummary([(0.5, 0.1, 0.9)]), FDSummary([(0.5, 0.1, 0.9)]))
        XCTAssertEqual(FDSummary([(0.5, 0.1, 0.9)]).lower!, 0.1, accuracy: 1e-15)
        XCTAssertGreaterThanOrEqual(FDSummary([(0.2, 0, 0.5), (0.1, 0, 0.4)]).lower!, 0)
        XCTAssertNil(FDSummary([(0.2, nil, nil)]).lower)
    }

    /// A log axis over 3…500 is padded by 5% of its decades on each side (2.3…650: no snapping outwards to 1-2-5
    /// values, which left half a panel empty) with 1-2-5 ticks inside it; the best point is labelled.
    func testLinePlotLabelsAndTicks() {
        let s = PlotSeries(name: "a", points: [PlotPoint(x: 10, y: 500), PlotPoint(x: 20, y: 3), PlotPoint(x: 50, y: 40)],
                           color: "#000", labelBest: true)
        let svg = LinePlot(title: "T", panels: [PlotPanel(title: "P", xLabel: "NFE", yLabel: "FD", yScale: .log, series: [s])]).svg()
        XCTAssertTrue(svg.contains(">3 @ 20<"))
        for t in [">5<", ">100<", ">500<"] { XCTAssertTrue(svg.contains(t), t) }
        XCTAssertFalse(svg.contains(">1000<"))
        XCTAssertFalse(svg.contains(">2<"))
        XCTAssertTrue(svg.contains("FD (log)"))
    }
}
