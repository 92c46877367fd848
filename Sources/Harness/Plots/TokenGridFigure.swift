import Foundation
import Metrics

/// Where on the image each expert is chosen: one small G×G grid per expert (the token grid, row r and column c of
/// the patch grid, token m = r·G + c), coloured by that expert's share of the top-k selections at each position
/// (selections of e at m ÷ all selections at m), one colour scale for all experts of the layer.
public struct TokenGridFigure {
    public var title: String
    public var grid: Int
    /// `[positions, experts]` counts, positions in token order.
    public var table: CountTable

    public init(title: String, grid: Int, table: CountTable) {
        precondition(table.rows == grid * grid, "TokenGridFigure: \(table.rows) positions for a \(grid)×\(grid) grid")
        self.title = title; self.grid = grid; self.table = table
    }

    public func svg() -> String {
        let e = table.columns, g = grid
        var share = [Double](repeating: 0, count: g * g * e)
        for m in 0..<(g * g) {
            let total = (0..<e).map { table[m, $0] }.reduce(0, +)
            for x in 0..<e { share[m * e + x] = total > 0 ? table[m, x] / total : 0 }
        }
        let hi = share.max() ?? 1, lo = share.min() ?? 0
        let cell = max(6.0, 96.0 / Double(g)), block = cell * Double(g), gap = 14.0, perRow = min(e, 8)
        let rows = (e + perRow - 1) / perRow
        let width = Double(perRow) * (block + gap) + gap + 60, height = 40 + Double(rows) * (block + 28) + 34
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
        s += "<text x=\"\(gap)\" y=\"18\" font-size=\"13\">\(Markup.escape(title))</text>"
        for x in 0..<e {
            let ox = gap + Double(x % perRow) * (block + gap), oy = 40 + Double(x / perRow) * (block + 28)
            s += "<text x=\"\(ox)\" y=\"\(oy - 4)\">expert \(x)</text>"
            for r in 0..<g {
                for c in 0..<g {
                    let v = share[(r * g + c) * e + x], f = hi > lo ? (v - lo) / (hi - lo) : 0
                    s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%@\"><title>row %d col %d: %.3f</title></rect>",
                                ox + Double(c) * cell, oy + Double(r) * cell, cell, cell, Heatmap.colour(f), r, c, v)
                }
            }
        }
        // Colour bar under the grids: the shared scale, lo (dark) to hi (bright), 32 bands.
        let barX = gap + 40, barW = 240.0, barY = height - 30, bands = 32
        for i in 0..<bands {
            s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"10\" fill=\"%@\"/>", barX + Double(i) * barW / Double(bands), barY,
                        barW / Double(bands) + 0.2, Heatmap.colour((Double(i) + 0.5) / Double(bands)))
        }
        s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"10\" fill=\"none\" stroke=\"#333\"/>", barX, barY, barW)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3f</text>", barX - 4, barY + 9, lo)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\">%.3f</text>", barX + barW + 4, barY + 9, hi)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\">share of the position's top-k selections (%d×%d token grid, row 0 = top of the image)</text>",
                    barX + barW + 44, barY + 9, g, g)
        return s + "</svg>"
    }
}
