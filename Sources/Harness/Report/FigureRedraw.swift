// `moebench report DIR --redraw`: the figures of a results directory drawn again from the data it stores, with the
// plotting code of this build (so a fix to a figure reaches runs measured before it). Only figures named in
// results.json are rewritten, each from:
//   cost_latency.svg            the cost part's cells (results.json)
//   expert_load.svg             the load-balance part's report.layers[].expertLoads (results.json)
//   heatmap_<class|step>_layer<L>.svg, token_grid_layer<L>.svg   heatmap_<class|step|position>_layer<L>.csv
//   curves.svg                  curves/curves.jsonl and the profile's [curves] settings
//   curves_models.svg, samples_<model>.svg   curves/<model>/curves.jsonl and samples/*.safetensors, the shipped digits
// A figure whose data is missing is left as it is and named in the returned `skipped` list.
import Foundation
import Metrics
import Training

public enum FigureRedraw {
    public struct Outcome: Sendable {
        public var written: [String] = []
        /// "file: reason" for each figure left as it was.
        public var skipped: [String] = []
    }

    public static func redraw(directory: URL) throws -> Outcome {
        let doc = try ResultsStore.loadDocument(directory: directory)
        var out = Outcome()
        func write(_ file: String, _ svg: () throws -> String?) {
            do {
                guard let text = try svg() else { out.skipped.append("\(file): no data for it"); return }
                try Data(text.utf8).write(to: directory.appendingPathComponent(file), options: .atomic)
                out.written.append(file)
            } catch {
                out.skipped.append("\(file): \(error)")
            }
        }
        for part in doc.parts {
            for figure in part.figures {
                let file = figure.file
                switch part.id {
                case "cost" where file == "cost_latency.svg":
                    write(file) {
                        guard let data = part.data else { return nil }
                        let cells: [CostCell]
                        if case .array = data { cells = try data.decode([CostCell].self) } else { cells = try data.decode(CostData.self).cells }
                        return CostFigure.latencyByBatch(cells)
                    }
                case "load_balance":
                    write(file) { try loadBalanceFigure(file, part: part, directory: directory) }
                case "curves":
                    write(file) { try curvesFigure(file, settings: doc.profile.curves, directory: directory) }
                default:
                    out.skipped.append("\(file): no drawing for part \(part.id)")
                }
            }
        }
        return out
    }

    /// `<row>,expert0,…` CSV of a CountTable (CountTable.csv) back into the table.
    static func countTable(_ path: URL, layer: Int) throws -> CountTable {
        let text = try String(contentsOf: path, encoding: .utf8)
        let lines = text.split(whereSeparator: \.isNewline).map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        guard let header = lines.first, header.count >= 2 else { throw ResultsError.badDocument(path: path.path, reason: "no header row") }
        var labels: [Int] = [], values: [Double] = []
        for (i, l) in lines.dropFirst().enumerated() {
            guard l.count == header.count, let label = Int(l[0]) else {
                throw ResultsError.badDocument(path: path.path, reason: "line \(i + 2): expected \(header.count) fields, a row number first")
            }
            labels.append(label)
            for f in l.dropFirst() {
                guard let v = Double(f) else { throw ResultsError.badDocument(path: path.path, reason: "line \(i + 2): \"\(f)\" is not a number") }
                values.append(v)
            }
        }
        return CountTable(layer: layer, rowName: String(header[0]), rowLabels: labels, columns: header.count - 1, values: values)
    }

    static func loadBalanceFigure(_ file: String, part: ResultPart, directory: URL) throws -> String? {
        if file == "expert_load.svg" {
            guard let data = part.data, case .object(let fields) = data, let report = fields["report"] else { return nil }
            return LoadBalancePart.expertLoadChart(try report.decode(LoadBalanceReport.self).layers.map(\.expertLoads)).svg()
        }
        let name = file.replacingOccurrences(of: ".svg", with: "")
        guard let range = name.range(of: "_layer"), let layer = Int(name[range.upperBound...]) else { return nil }
        if name.hasPrefix("token_grid_") {
            let table = try countTable(directory.appendingPathComponent("heatmap_position_layer\(layer).csv"), layer: layer)
            let grid = Int(Double(table.rows).squareRoot().rounded())
            return grid * grid == table.rows ? LoadBalancePart.tokenGrid(table, grid: grid).svg() : nil
        }
        for kind in ["class", "step", "position"] where name.hasPrefix("heatmap_\(kind)_") {
            let table = try countTable(directory.appendingPathComponent("\(name).csv"), layer: layer)
            return LoadBalancePart.heatmap(table, kind: kind, scaled: kind != "class").svg()
        }
        return nil
    }

    static func curvesFigure(_ file: String, settings: CurvesSettings?, directory: URL) throws -> String? {
        guard let settings else { return nil }
        let curves = directory.appendingPathComponent("curves")
        func rows(_ dir: URL) throws -> [CurveRow]? {
            guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("curves.jsonl").path) else { return nil }
            return try CurveStore(directory: dir.path).rows
        }
        if file == "curves.svg" {
            guard let r = try rows(curves), !r.isEmpty else { return nil }
            return CurveSummary(rows: r).figure(title: CurvesPart.testbedTitle(settings)).svg()
        }
        if file == "curves_models.svg" {
            var summaries: [(name: String, summary: CurveSummary)] = []
            for id in settings.models {
                guard let r = try rows(curves.appendingPathComponent(id)), !r.isEmpty else { return nil }
                summaries.append((id, CurveSummary(rows: r)))
            }
            return summaries.isEmpty ? nil : CurveSummary.comparison(summaries, title: CurvesPart.modelsTitle(settings)).svg()
        }
        if file.hasPrefix("samples_"), file.hasSuffix(".svg") {
            let id = String(file.dropFirst("samples_".count).dropLast(".svg".count))
            let dir = curves.appendingPathComponent(id)
            guard let r = try rows(dir), !r.isEmpty else { return nil }
            let heldOut = try DigitsDataset.bundled().split().heldOut
            return try CurvesPart.sampleGrids(rows: r, directory: dir, model: id, reference: heldOut.pixels.map { ($0 + 1) / 2 },
                                              floor: CurveSummary(rows: r).floorFIDDigits?.mean).svg()
        }
        return nil
    }
}
