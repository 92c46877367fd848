import Foundation
import XCTest
@testable import Harness
import Metrics

/// `moebench compare` on two synthetic runs (Fixtures/compare-{a,b}, written by tools/compare_fixtures.py):
/// moe b1 is 1.30× slower in B, dense b1 1.01×, the paired ratio 1.01×; one cell only in each run; B was busy.
final class CompareTests: XCTestCase {
    var fixtures: URL { Bundle.module.url(forResource: "Fixtures", withExtension: nil)! }

    func comparison(threshold: Double = 0.05) throws -> RunComparison {
        try RunComparison.load(fixtures.appendingPathComponent("compare-a"), fixtures.appendingPathComponent("compare-b"),
                               threshold: threshold)
    }

    /// Ratios are ratios of medians (closed form: B = 1.30·A and 1.01·A value by value, so exactly 1.30 and 1.01 up
    /// to the fixture's 6-decimal rounding, tolerance 1e-6); the regression is flagged with an interval above 1.
    func testSharedCellsRatiosAndVerdicts() throws {
        let c = try comparison()
        XCTAssertEqual(c.cells.map(\.cell), ["moe in_process b1 single_stream fp32", "dense in_process b1 single_stream fp32", "M vs D b1"])
        let moe = c.cells[0], dense = c.cells[1], pair = c.cells[2]
        XCTAssertEqual(moe.ratio, 1.30, accuracy: 1e-6)
        XCTAssertEqual(moe.a, median((0..<20).map { 10 + 0.1 * Double((7 * $0) % 20) }), accuracy: 1e-9)
        XCTAssertEqual(moe.verdict, "regression")
        XCTAssertGreaterThan(try XCTUnwrap(moe.interval).lower, 1)
        XCTAssertEqual(dense.ratio, 1.01, accuracy: 1e-6)
        XCTAssertEqual(dense.verdict, "same")
        XCTAssertEqual(pair.unit, "ratio")
        XCTAssertEqual(pair.ratio, 1.01, accuracy: 1e-5)
        XCTAssertEqual(c.onlyInA, ["cost: moe in_process b16 offline fp32"])
        XCTAssertEqual(c.onlyInB, ["cost: dense in_process b16 single_stream fp32"])
        XCTAssertEqual(c.regressions.count, 1)
        XCTAssertEqual(c.regressions(above: 0.2).count, 1)
        XCTAssertEqual(c.regressions(above: 0.5).count, 0)
        XCTAssertTrue(c.a.busy.isEmpty)
        XCTAssertEqual(c.b.busy.count, 1)
        // A 40% threshold: 1.30 is within it.
        XCTAssertEqual(try comparison(threshold: 0.4).cells[0].verdict, "same")
    }

    /// Verdict rules: beyond the threshold with the interval containing 1 is "unclear", not a regression.
    func testVerdictNeedsTheIntervalToExcludeOne() {
        func iv(_ lo: Double, _ hi: Double) -> BootstrapInterval { BootstrapInterval(lower: lo, upper: hi, confidence: 0.95, resamples: 1, seed: 0) }
        XCTAssertEqual(RunComparison.verdict(ratio: 1.2, interval: iv(1.1, 1.3), threshold: 0.05), "regression")
        XCTAssertEqual(RunComparison.verdict(ratio: 1.2, interval: iv(0.9, 1.5), threshold: 0.05), "unclear")
        XCTAssertEqual(RunComparison.verdict(ratio: 1.2, interval: nil, threshold: 0.05), "regression")
        XCTAssertEqual(RunComparison.verdict(ratio: 0.8, interval: iv(0.7, 0.9), threshold: 0.05), "improvement")
        XCTAssertEqual(RunComparison.verdict(ratio: 1.04, interval: iv(1.02, 1.06), threshold: 0.05), "same")
    }

    /// Markdown (the default) fits 100 columns and names what is missing and the busy run; CSV has one line per
    /// shared cell and one per lone cell; JSON decodes back.
    func testFormats() throws {
        let c = try comparison()
        let md = c.markdown()
        XCTAssertTrue(md.contains("**REGRESSION**"))
        XCTAssertTrue(md.contains("Only in A: cost: moe in_process b16 offline fp32"))
        XCTAssertTrue(md.contains("Run B was measured on a busy machine"))
        for line in md.split(separator: "\n") where line.hasPrefix("|") { XCTAssertLessThanOrEqual(line.count, 100, String(line)) }
        let csv = c.csv().split(separator: "\n")
        XCTAssertEqual(csv.count, 1 + 3 + 2)
        XCTAssertTrue(csv[0].hasPrefix("part,cell,unit,a,b,"))
        XCTAssertTrue(csv[1].hasSuffix(",regression"))
        let back = try JSONDecoder().decode(RunComparison.self, from: Data(try c.json().utf8))
        XCTAssertEqual(back.cells, c.cells)
    }

    /// results.json numbers are doubles: the bootstrap's seed (and interval) survive the round trip exactly.
    func testIntervalSurvivesResultsJSON() throws {
        let i = Bootstrap.medianInterval([3, 1, 4, 1, 5, 9, 2, 6])
        XCTAssertEqual(try JSONValue.from(i).decode(BootstrapInterval.self), i)
        XCTAssertLessThan(BootstrapPolicy.seed, 1 << 53)
    }

    /// Errors name the path.
    func testErrorsNameThePath() {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-run-\(UUID().uuidString)")
        XCTAssertThrowsError(try RunComparison.load(missing, fixtures.appendingPathComponent("compare-b"), threshold: 0.05)) { e in
            XCTAssertTrue("\(e)".contains(missing.path + "/results.json"), "\(e)")
        }
    }

    /// The command line: exit 0 without --fail-above, 2 when a cell regressed by more than it, 1 with the path for
    /// a missing directory. Runs the `moebench` that `swift test` builds next to the test bundle (checked on a fresh
    /// clone); its absence is a failure, not a skip.
    func testCommandExitCodes() throws {
        let moebench = try MoebenchBinary()
        func run(_ args: [String]) throws -> (Int32, String, String) { try moebench.run(args) }
        let a = fixtures.appendingPathComponent("compare-a").path, b = fixtures.appendingPathComponent("compare-b").path
        let plain = try run(["compare", a, b])
        XCTAssertEqual(plain.0, 0)
        XCTAssertTrue(plain.1.contains("| moe in_process b1 single_stream fp32 |"))
        XCTAssertEqual(try run(["compare", a, b, "--fail-above", "0.2"]).0, 2)
        XCTAssertEqual(try run(["compare", a, b, "--fail-above", "0.5"]).0, 0)
        let csv = try run(["compare", a, b, "--format", "csv"])
        XCTAssertTrue(csv.1.hasPrefix("part,cell,unit,"))
        let json = try run(["compare", a, b, "--format", "json"])
        XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(json.1.utf8)))
        let missing = try run(["compare", "/nonexistent/run", b])
        XCTAssertEqual(missing.0, 1)
        XCTAssertTrue(missing.2.contains("/nonexistent/run"), missing.2)
    }
}

/// The suite summary's formats: text and markdown tables keep the columns that fit 100 characters and name the
/// CSV with the rest; CSV is one tidy table; JSON is the document.
final class SummaryFormatTests: XCTestCase {
    func testFormatsAndWidth() throws {
        let dir = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("sample-results")
        var doc = try ResultsStore.loadDocument(directory: dir)
        let wide = ResultTable(id: "wide", title: "Wide", columns: (0..<30).map { .init("column \($0)", unit: "ms") },
                               rows: [(0..<30).map { .number(Double($0) + 0.123456) }], csv: "wide.csv")
        doc.parts[0].tables = [wide]
        let text = try SummaryTable.render(doc, format: .text)
        let tableLines = text.split(separator: "\n").filter { $0.hasPrefix("  column") || $0.hasPrefix("  0.1235") }
        XCTAssertEqual(tableLines.count, 2)
        for l in tableLines { XCTAssertLessThanOrEqual(l.count, 100, String(l)) }
        XCTAssertTrue(text.contains("more column(s) in wide.csv"))
        let md = try SummaryTable.render(doc, format: .md)
        for l in md.split(separator: "\n") where l.hasPrefix("|") { XCTAssertLessThanOrEqual(l.count, 100, String(l)) }
        let csv = try SummaryTable.render(doc, format: .csv).split(separator: "\n")
        XCTAssertEqual(csv[0], "part,table,row,column,unit,value")
        XCTAssertTrue(csv.contains("cost,wide,0,column 29,ms,29.123456"))
        let json = try SummaryTable.render(doc, format: .json)
        XCTAssertEqual(try JSONDecoder().decode(ResultsDocument.self, from: Data(json.utf8)).parts[0].tables[0].columns.count, 30)
    }
}
