import Foundation
import XCTest
@testable import Harness

/// The whole suite on profiles/tiny.toml (one-block models, 8×8 latents): every part finishes and writes the
/// files and fields docs/results.md documents.
final class SuiteTests: XCTestCase {
    func testTinySuiteWritesDocumentedResults() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let profile = try Profile.load(path: repo.appendingPathComponent("profiles/tiny.toml").path)
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("moebench-suite-\(getpid())")
        defer { try? FileManager.default.removeItem(at: root) }
        let dir = try SuiteRunner(profile: profile, resultsRoot: root, progress: Progress(enabled: false)).run()

        let doc = try ResultsStore.loadDocument(directory: dir)
        XCTAssertEqual(doc.status, .complete)
        XCTAssertEqual(doc.parts.map(\.id), ["cost", "load_balance", "curves"])
        XCTAssertEqual(doc.parts.map(\.status), [.done, .done, .done])
        XCTAssertNotNil(doc.finishedAt)
        XCTAssertEqual(doc.seeds, [0])

        // cost: one cell per (model, batch, scenario), with the documented fields.
        let cost = try XCTUnwrap(doc.parts[0].data).decode(CostData.self)
        let cells = cost.cells
        XCTAssertEqual(cells.map(\.model), ["moe", "dense"])
        for c in cells {
            XCTAssertGreaterThan(c.latency.medianMs, 0)
            XCTAssertEqual(c.latency.count, 1)          // min_iterations = 1: no interval, no tails, each with its reason
            XCTAssertNil(c.latency.medianInterval)
            XCTAssertNil(c.latency.p90Ms)
            XCTAssertEqual(c.latency.omitted.count, 4)
            XCTAssertGreaterThan(c.gflopPerQuery, 0)
            XCTAssertGreaterThan(c.fractionOfRoofline, 0)
            XCTAssertGreaterThan(c.phaseMsPerQuery["attention"] ?? 0, 0)
        }
        XCTAssertGreaterThan(cells[0].phaseMsPerQuery["routed_experts"] ?? 0, 0)
        XCTAssertEqual(cells[1].phaseMsPerQuery["routed_experts"], nil)
        // Activated < total parameters for MoE, equal for dense.
        XCTAssertLessThan(cells[0].activatedParameters, cells[0].totalParameters)
        XCTAssertEqual(cells[1].activatedParameters, cells[1].totalParameters)
        // MoE against dense: ≥ 20 alternating pairs, the median paired ratio inside its bootstrap interval.
        let pair = try XCTUnwrap(cost.pairs.first)
        XCTAssertEqual(cost.pairs.count, 1)
        XCTAssertEqual(pair.method, "paired")
        XCTAssertGreaterThanOrEqual(pair.count, 20)
        XCTAssertEqual(pair.firstMs?.count, pair.count)
        XCTAssertTrue(try XCTUnwrap(pair.interval).contains(pair.ratio))
        // The roofline is measured once and recorded; every part records the machine's load around it.
        XCTAssertEqual(doc.roofline, cost.roofline)
        XCTAssertEqual(doc.roofline?.source, "measured in this run")
        XCTAssertGreaterThan(doc.roofline?.gflops ?? 0, 0)
        XCTAssertEqual(doc.schema, "moebench-results/2")
        for part in doc.parts {
            let load = try XCTUnwrap(part.machineLoad, part.id)
            XCTAssertEqual(load.busy, !load.warnings.isEmpty)
            for w in load.warnings { XCTAssertTrue(part.summary.contains(w)) }
        }

        // Every table has its CSV and every figure its SVG; the report inlines them.
        for part in doc.parts {
            for t in part.tables { XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(t.csv ?? "?").path), t.id) }
            for f in part.figures { XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(f.file).path), f.file) }
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("curves/curves.jsonl").path))
        let html = try String(contentsOf: dir.appendingPathComponent("index.html"), encoding: .utf8)
        for title in doc.parts.map(\.title) { XCTAssertTrue(html.contains(title), title) }
        XCTAssertTrue(html.contains("<svg"))

        // load balance: 16 tokens × 2 steps × top-2 over 1 layer, conditional half only (batch 1 with CFG).
        let lb = doc.parts[1]
        XCTAssertEqual(lb.tables.first?.id, "load_balance_layers")
        XCTAssertEqual(lb.summary.contains { $0.contains("32 tokens recorded") }, true, "\(lb.summary)")
    }
}
