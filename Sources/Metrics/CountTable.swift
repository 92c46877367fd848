// A row-major table of counts for heatmaps: rows are classes, token positions or steps; columns are experts.
import Foundation

public struct CountTable: Codable, Equatable, Sendable {
    /// MoE layer the table belongs to (0-based), or -1 when not layer-specific.
    public var layer: Int
    /// What a row is: "class", "position" or "step".
    public var rowName: String
    /// The class / position / step index of each row.
    public var rowLabels: [Int]
    /// Number of columns (experts).
    public var columns: Int
    /// rows × columns values, row-major.
    public var values: [Double]
    /// "count" for raw selection counts, "minmax" for per-layer min–max scaled values in [0, 1].
    public var scale: String

    public init(layer: Int, rowName: String, rowLabels: [Int], columns: Int, values: [Double], scale: String = "count") {
        precondition(values.count == rowLabels.count * columns, "CountTable: values must be rows × columns")
        self.layer = layer
        self.rowName = rowName
        self.rowLabels = rowLabels
        self.columns = columns
        self.values = values
        self.scale = scale
    }

    public var rows: Int { rowLabels.count }

    public subscript(row: Int, column: Int) -> Double { values[row * columns + column] }

    /// Min–max scaling over the whole table, (v − min)/(max − min), as DiT-MoE's heatmap_patch.py and
    /// heatmap_step.py do per layer. A constant table scales to all zeros.
    public func minMaxScaled() -> CountTable {
        guard let lo = values.min(), let hi = values.max() else { return self }
        let range = hi - lo
        let scaled = values.map { range > 0 ? ($0 - lo) / range : 0 }
        return CountTable(layer: layer, rowName: rowName, rowLabels: rowLabels, columns: columns, values: scaled,
                          scale: "minmax")
    }

    /// CSV with a header `<rowName>,expert0,expert1,…` and one line per row (CSVText).
    public func csv() -> String {
        CSVText.document(header: [rowName] + (0..<columns).map { "expert\($0)" },
                         rows: (0..<rows).map { r in [.text(String(rowLabels[r]))] + (0..<columns).map { .number(self[r, $0]) } })
    }
}
