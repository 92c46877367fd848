import Foundation
import XCTest
@testable import Harness
import Metrics

final class ResultsAndReportTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("moebench-results-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root)
    }

    func tinyProfile() throws -> Profile {
        try Profile.load(path: ProfileTests.repo.appendingPathComponent("profiles/tiny.toml").path)
    }

    /// A recorder with a known pattern: layer 0 sends everything to experts 0/1, layer 1 spreads evenly.
    func recorder() -> ExpertLoadRecorder {
        let r = ExpertLoadRecorder(dims: RoutingDimensions(layers: 2, steps: 3, positions: 4, classes: 10, experts: 4))
        for step in 0..<3 {
            for pos in 0..<4 {
                [Int32(0), 1].withUnsafeBufferPointer { r.record(layer: 0, step: step, classLabel: 3, tokenPosition: pos, experts: $0) }
                [Int32(pos), Int32((pos + 1) % 4)].withUnsafeBufferPointer {
                    r.record(layer: 1, step: step, classLabel: 3, tokenPosition: pos, experts: $0)
                }
            }
        }
        return r
    }

    func testMachineInfoIsCollected() {
        let m = MachineInfo.collect()
        XCTAssertGreaterThan(m.logicalCores, 0)
        XCTAssertFalse(m.os.isEmpty)
        XCTAssertNotNil(m.openblasCore)
        XCTAssertGreaterThanOrEqual(m.openblasThreads ?? 0, 1)
        if m.numaAvailable {
            XCTAssertFalse(m.numaNodes.isEmpty)
            XCTAssertEqual(Set(m.numaNodes.flatMap(\.cpus)).count, m.numaNodes.flatMap(\.cpus).count, "a CPU in two nodes")
        }
        XCTAssertEqual(MachineInfo.cpuModelName(cpuinfo: "processor\t: 0\nmodel name\t: Test CPU 9000\nflags: x\n"), "Test CPU 9000")
        XCTAssertNil(MachineInfo.cpuModelName(cpuinfo: "processor : 0\n"))
        XCTAssertNil(MachineInfo.runGit(["rev-parse", "HEAD"], in: root.path), "a temp directory is not a repository")
    }

    func testStoreWritesIncrementallyAndAtomically() throws {
        let profile = try tinyProfile()
        let date = Date(timeIntervalSince1970: 1_800_000_000)
        let store = try ResultsStore.create(root: root, profile: profile, machine: MachineInfo.collect(), date: date)
        XCTAssertTrue(store.directory.lastPathComponent.hasSuffix("-tiny"))
        // the initial document exists before any part finished
        var doc = try ResultsStore.loadDocument(directory: store.directory)
        XCTAssertEqual(doc.status, .running)
        XCTAssertEqual(doc.schema, ResultsDocument.currentSchema)
        XCTAssertEqual(doc.profile, profile)
        XCTAssertEqual(doc.seeds, [0])
        XCTAssertTrue(doc.parts.isEmpty)

        let t = try store.writeCSV(ResultTable(id: "t1", title: "T", columns: [.init("model"), .init("p50", unit: "ms")],
                                               rows: [[.string("a,b"), .number(1.5)], [.string("c"), .null]]))
        XCTAssertEqual(t.csv, "t1.csv")
        XCTAssertEqual(try String(contentsOf: store.directory.appendingPathComponent("t1.csv"), encoding: .utf8),
                       "model,p50 [ms]\n\"a,b\",1.5\nc,\n")
        try store.add(ResultPart(id: "one", title: "One", tables: [t]))
        doc = try ResultsStore.loadDocument(directory: store.directory)
        XCTAssertEqual(doc.parts.map(\.id), ["one"])
        try store.add(ResultPart(id: "two", title: "Two"))
        try store.add(ResultPart(id: "one", title: "One again"))     // replaces in place
        doc = try ResultsStore.loadDocument(directory: store.directory)
        XCTAssertEqual(doc.parts.map(\.title), ["One again", "Two"])
        XCTAssertNil(doc.finishedAt)
        try store.finish()
        doc = try ResultsStore.loadDocument(directory: store.directory)
        XCTAssertEqual(doc.status, .complete)
        XCTAssertNotNil(doc.finishedAt)
        // no temporary files left behind
        let names = try FileManager.default.contentsOfDirectory(atPath: store.directory.path)
        XCTAssertFalse(names.contains { $0.contains(".tmp") }, "\(names)")
        // a second run in the same second gets its own directory
        let again = try ResultsStore.create(root: root, profile: profile, machine: doc.machine, date: date)
        XCTAssertEqual(again.directory.lastPathComponent, store.directory.lastPathComponent + "-2")
        // file names cannot escape the directory
        XCTAssertThrowsError(try store.writeFile("../x.csv", Data()))
        XCTAssertThrowsError(try store.writeSVG("fig.png", ""))
    }

    func testInterruptedRunIsMarkedAndResumesWithTheSameProfileOnly() throws {
        let profile = try tinyProfile()
        let store = try ResultsStore.create(root: root, profile: profile, machine: MachineInfo.collect())
        try store.add(ResultPart(id: "cost", title: "Cost"))
        try store.add(ResultPart(id: "load_balance", title: "Partial", status: .running))
        try store.markInterrupted()
        try store.add(ResultPart(id: "curves", title: "Late"))   // the suite thread after the interruption: ignored
        try store.finish()                                        // likewise: stays "interrupted"
        var doc = try ResultsStore.loadDocument(directory: store.directory)
        XCTAssertEqual(doc.status, .interrupted)
        XCTAssertEqual(doc.parts.map(\.status), [.done, .interrupted])
        XCTAssertNotNil(doc.finishedAt)
        XCTAssertTrue(ReportRenderer.render(doc) { _ in nil }.contains("was interrupted"))

        var other = profile
        other.name = "other"
        XCTAssertThrowsError(try ResultsStore.resume(directory: store.directory, profile: other)) {
            XCTAssertTrue("\($0)".contains("written by profile 'tiny', not 'other'"), "\($0)")
        }
        var changed = profile
        changed.run.seeds = [1]
        XCTAssertThrowsError(try ResultsStore.resume(directory: store.directory, profile: changed)) {
            XCTAssertTrue("\($0)".contains("has changed since this run started"), "\($0)")
        }
        let resumed = try ResultsStore.resume(directory: store.directory, profile: profile)
        doc = try ResultsStore.loadDocument(directory: store.directory)
        XCTAssertEqual(doc.status, .running)
        XCTAssertEqual(doc.parts.map(\.id), ["cost"])
        XCTAssertEqual(doc.resumedAt?.count, 1)
        XCTAssertNotNil(resumed.finishedPart("cost"))
        XCTAssertNil(resumed.finishedPart("load_balance"))

        // The runner keeps finished parts: with all three marked done it measures nothing and completes.
        for id in ["load_balance", "curves"] { try resumed.add(ResultPart(id: id, title: "kept \(id)")) }
        try resumed.markInterrupted()
        let runner = SuiteRunner(profile: profile, resultsRoot: root, progress: Progress(enabled: false))
        runner.resumeDirectory = store.directory
        try runner.run()
        doc = try ResultsStore.loadDocument(directory: store.directory)
        XCTAssertEqual(doc.status, .complete)
        XCTAssertEqual(doc.parts.map(\.title), ["Cost", "kept load_balance", "kept curves"])
        XCTAssertThrowsError(try ResultsStore.resume(directory: store.directory, profile: profile)) {
            XCTAssertTrue("\($0)".contains("complete"), "\($0)")
        }
    }

    func testLoadDocumentErrorsNameTheField() throws {
        try Data("{\"schema\": \"moebench-results/1\"}".utf8).write(to: root.appendingPathComponent("results.json"))
        XCTAssertThrowsError(try ResultsStore.loadDocument(directory: root)) { e in
            XCTAssertTrue("\(e)".contains("results.json"), "\(e)")
            XCTAssertTrue("\(e)".contains("missing field"), "\(e)")
        }
        XCTAssertThrowsError(try ResultsStore.loadDocument(directory: root.appendingPathComponent("nope"))) { e in
            XCTAssertTrue("\(e)".contains("missing or unreadable"), "\(e)")
        }
    }

    func testLoadBalancePartWritesTablesAndHeatmaps() throws {
        let store = try ResultsStore.create(root: root, profile: try tinyProfile(), machine: MachineInfo.collect())
        let placement = ExpertPlacement.contiguous(experts: 4, workers: 2, numaNodes: 2)
        let part = try LoadBalancePart.make(recorder: recorder(), placement: placement, extraSlotsPerWorker: 1,
                                            heatmapLayers: [0, 1], store: store)
        try store.add(part)
        XCTAssertEqual(part.tables.map(\.id), ["load_balance_layers", "load_balance_workers", "load_balance_numa", "placement_what_if",
                                                "routing_verdicts", "routing_dependence"])
        // The per-expert load bars, and per heatmap layer the token grid (4 positions = a 2×2 grid, which replaces the
        // position strip) and the class and step heatmaps.
        XCTAssertEqual(part.figures.map(\.id), ["expert_load", "token_grid_layer0", "heatmap_class_layer0", "heatmap_step_layer0",
                                                 "token_grid_layer1", "heatmap_class_layer1", "heatmap_step_layer1"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: store.directory.appendingPathComponent("heatmap_position_layer0.csv").path))
        for f in part.figures { XCTAssertTrue(FileManager.default.fileExists(atPath: store.directory.appendingPathComponent(f.file).path), f.file) }
        // layer 0: 12 tokens × 2 slots on experts 0 and 1 → loads 12,12,0,0: MaxVio 1, balancedness 0.5
        let layers = part.tables[0]
        XCTAssertEqual(layers.rows[0][1], .number(24))
        XCTAssertEqual(layers.rows[0][2], .number(0.5))
        XCTAssertEqual(layers.rows[0][3], .number(1))
        // contiguous placement w0 {0,1}, w1 {2,3}: w0 carries 24 + 12 = 36, w1 12
        XCTAssertEqual(part.tables[1].rows.map { $0[3] }, [.number(36), .number(12)])
        // raw step × expert counts of layer 0 in CSV
        XCTAssertEqual(try String(contentsOf: store.directory.appendingPathComponent("heatmap_step_layer0.csv"), encoding: .utf8),
                       "step,expert0,expert1,expert2,expert3\n0,4,4,0,0\n1,4,4,0,0\n2,4,4,0,0\n")
        let payload = try XCTUnwrap(part.data)
        guard case let .object(o) = payload, case let .object(rep)? = o["report"] else { return XCTFail("payload shape") }
        XCTAssertNotNil(rep["overall"])
        XCTAssertNotNil(o["whatIf"])
    }

    func testHeatmapSVG() {
        let t = CountTable(layer: 0, rowName: "step", rowLabels: [0, 1], columns: 3, values: [0, 1, 2, 3, 4, 5])
        let svg = Heatmap(t, title: "Layer 0: step × expert").svg()
        XCTAssertTrue(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        XCTAssertTrue(svg.hasSuffix("</svg>\n"))
        XCTAssertEqual(svg.components(separatedBy: "<rect").count - 1, 6 + 1 + 32 + 1)  // cells, frame, bar bands, bar frame
        XCTAssertTrue(svg.contains(">expert<"))
        XCTAssertTrue(svg.contains(">step<"))
        XCTAssertTrue(svg.contains("selections (count)"))
        XCTAssertTrue(svg.contains("step 1, expert 2: 5"))
        XCTAssertEqual(Heatmap.colour(0), "#440154")
        XCTAssertEqual(Heatmap.colour(1), "#fde725")
        XCTAssertTrue(Heatmap(t.minMaxScaled(), title: "x").svg().contains("min–max scaled"))
    }

    func testReportRendersEverySectionFromTheDirectory() throws {
        let store = try ResultsStore.create(root: root, profile: try tinyProfile(), machine: MachineInfo.collect())
        let cost = try store.writeCSV(ResultTable(id: "cost", title: "Cost <per forward>",
                                                  columns: [.init("model"), .init("p50", unit: "ms"), .init("true FLOPs", unit: "GFLOP")],
                                                  rows: [[.string("moe"), .number(12.5), .number(32.06)]]))
        try store.add(ResultPart(id: "cost", title: "Dense vs MoE cost", summary: ["MoE & dense"], tables: [cost]))
        try store.add(try LoadBalancePart.make(recorder: recorder(), placement: nil, extraSlotsPerWorker: 0,
                                               heatmapLayers: [1], store: store))
        // a figure written by another writer (e.g. the curves plot), with an XML prolog, plus a missing one
        try store.writeSVG("curves.svg", "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"><text>NFE–FD</text></svg>")
        try store.add(ResultPart(id: "curves", title: "Sampler curves",
                                 figures: [ResultFigure(id: "fd", title: "NFE vs FD", file: "curves.svg"),
                                           ResultFigure(id: "gone", title: "Missing", file: "gone.svg")]))
        let index = try ReportRenderer.write(directory: store.directory)
        let html = try String(contentsOf: index, encoding: .utf8)
        for needle in ["<h2>Run metadata</h2>", "CPU model", "OpenBLAS core / threads", "NUMA (libnuma)", "git commit", "seeds",
                       "<h2>Dense vs MoE cost</h2>", "Cost &lt;per forward&gt;", "[ms]", "[GFLOP]", "32.06", "MoE &amp; dense",
                       "<h2>Expert load balance</h2>", "Per-layer balance over experts", "[mean/max]",
                       "Layer 1: step × expert", "expert share on the 2×2 token grid", "Layer 1: class × expert",
                       "<h2>Sampler curves</h2>", "<text>NFE–FD</text>", "figure file missing: gone.svg",
                       "href=\"cost.csv\"", "This suite had not finished"] {
            XCTAssertTrue(html.contains(needle), "report lacks \(needle)")
        }
        XCTAssertFalse(html.contains("<?xml"))
        // self-contained: no external fetches
        for banned in ["<script", "http://", "https://", "<link", "@import"] {
            let occurrences = html.components(separatedBy: banned).count - 1
            let allowed = banned == "http://" ? html.components(separatedBy: "xmlns=\"http://www.w3.org/2000/svg\"").count - 1 : 0
            XCTAssertEqual(occurrences, allowed, "report contains \(banned)")
        }
        try store.finish()
        XCTAssertFalse(try ReportRenderer.render(directory: store.directory).contains("This suite had not finished"))
    }

    func testReportFromCommittedFixture() throws {
        let dir = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
            .appendingPathComponent("sample-results")
        let html = try ReportRenderer.render(directory: dir)
        for needle in ["<h2>Run metadata</h2>", "Fixture CPU", "<h2>Dense vs MoE cost</h2>", "DiT-MoE-S/2-8E2A",
                       "<h2>Sampler curves</h2>", "<circle", "status: <b>complete</b>"] {
            XCTAssertTrue(html.contains(needle), "fixture report lacks \(needle)")
        }
    }
}
