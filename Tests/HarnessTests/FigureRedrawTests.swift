import Foundation
import XCTest
@testable import Harness
import Metrics

/// `moebench report --redraw`: figures drawn again from the stored data; figures without data are kept and named.
final class FigureRedrawTests: XCTestCase {
    func testRedrawsFromStoredDataAndNamesWhatItKeeps() throws {
        let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("redraw-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var doc = try ResultsStore.loadDocument(directory: fixtures.appendingPathComponent("sample-results"))
        let classes = CountTable(layer: 0, rowName: "class", rowLabels: [0, 1, 2], columns: 4, values: [5, 0, 3, 2, 1, 1, 1, 7, 9, 0, 0, 1])
        try Data(classes.csv().utf8).write(to: dir.appendingPathComponent("heatmap_class_layer0.csv"))
        doc.parts.append(ResultPart(id: "load_balance", title: "Load balance", summary: [], tables: [],
                                    figures: [ResultFigure(id: "expert_load", title: "", file: "expert_load.svg"),
                                              ResultFigure(id: "heatmap_class_layer0", title: "", file: "heatmap_class_layer0.svg"),
                                              ResultFigure(id: "heatmap_step_layer0", title: "", file: "heatmap_step_layer0.svg")],
                                    data: .object(["report": try JSONValue.from(LoadBalanceReport(loads: [[1, 2, 3, 2], [2, 2, 2, 2]]))])))
        try JSONEncoder().encode(doc).write(to: dir.appendingPathComponent("results.json"))

        XCTAssertEqual(try FigureRedraw.countTable(dir.appendingPathComponent("heatmap_class_layer0.csv"), layer: 0), classes)
        let out = try FigureRedraw.redraw(directory: dir)
        XCTAssertEqual(out.written, ["expert_load.svg", "heatmap_class_layer0.svg"])
        let load = try String(contentsOf: dir.appendingPathComponent("expert_load.svg"), encoding: .utf8)
        XCTAssertTrue(load.contains("balanced (= layer mean)"))
        XCTAssertTrue(load.contains(">layer 1<"))
        // The sample run's curves figure has no curves settings or rows behind it; the step heatmap no CSV.
        XCTAssertTrue(out.skipped.contains("curves.svg: no data for it"), "\(out.skipped)")
        XCTAssertTrue(out.skipped.contains { $0.hasPrefix("heatmap_step_layer0.svg: ") }, "\(out.skipped)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("heatmap_step_layer0.svg").path))
    }
}
