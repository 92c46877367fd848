// A dependency-free SVG heatmap (rows × columns, e.g. step × expert) with axis labels, tick labels and a colour bar.
// Colour map: viridis, interpolated linearly between 9 anchor colours; value v maps to (v − lo)/(hi − lo).
import Foundation
import Metrics

public struct Heatmap {
    public var title: String
    public var xLabel: String
    public var yLabel: String
    /// Label of the colour bar, with unit (e.g. "selections (count)" or "min–max scaled count").
    public var valueLabel: String
    public var rows: Int
    public var columns: Int
    /// rows × columns, row-major; row 0 is drawn at the top.
    public var values: [Double]
    public var rowLabels: [String]
    public var columnLabels: [String]

    public init(title: String, xLabel: String, yLabel: String, valueLabel: String, rows: Int, columns: Int,
                values: [Double], rowLabels: [String], columnLabels: [String]) {
        precondition(values.count == rows * columns && rowLabels.count == rows && columnLabels.count == columns,
                     "Heatmap: sizes disagree")
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.valueLabel = valueLabel
        self.rows = rows
        self.columns = columns
        self.values = values
        self.rowLabels = rowLabels
        self.columnLabels = columnLabels
    }

    /// A heatmap of a routing table: rows are classes / positions / steps, columns experts.
    public init(_ t: CountTable, title: String) {
        let label = t.scale == "minmax" ? "min–max scaled selections (0–1)" : "selections (count)"
        self.init(title: title, xLabel: "expert", yLabel: t.rowName, valueLabel: label, rows: t.rows, columns: t.columns,
                  values: t.values, rowLabels: t.rowLabels.map(String.init), columnLabels: (0..<t.columns).map(String.init))
    }

    static let viridis: [(Double, Double, Double)] = [
        (68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142),
        (31, 158, 137), (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37),
    ]

    /// Hex colour of a fraction in [0, 1].
    static func colour(_ f: Double) -> String {
        let x = min(max(f.isFinite ? f : 0, 0), 1) * Double(viridis.count - 1)
        let i = min(Int(x), viridis.count - 2)
        let t = x - Double(i)
        let a = viridis[i], b = viridis[i + 1]
        func ch(_ u: Double, _ v: Double) -> Int { Int((u + (v - u) * t).rounded()) }
        return String(format: "#%02x%02x%02x", ch(a.0, b.0), ch(a.1, b.1), ch(a.2, b.2))
    }

    public func svg() -> String {
        let plotW = Double(max(160, min(480, columns * 40))), plotH = Double(max(120, min(420, rows * 14)))
        let left = 70.0, top = 36.0, barGap = 24.0, barW = 14.0, right = 90.0, bottom = 50.0
        let width = left + plotW + barGap + barW + right, height = top + plotH + bottom
        let cw = plotW / Double(max(columns, 1)), rh = plotH / Double(max(rows, 1))
        let lo = values.min() ?? 0, hi = values.max() ?? 0
        let span = hi - lo
        var s = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="11">
            <title>\(Markup.escape(title))</title>
            <text x="\(left + plotW / 2)" y="18" text-anchor="middle" font-size="13" font-weight="bold">\(Markup.escape(title))</text>

            """
        for r in 0..<rows {
            for c in 0..<columns {
                let v = values[r * columns + c]
                let f = span > 0 ? (v - lo) / span : 0
                s += "<rect x=\"\(fmt(left + Double(c) * cw))\" y=\"\(fmt(top + Double(r) * rh))\" width=\"\(fmt(cw + 0.2))\" height=\"\(fmt(rh + 0.2))\" fill=\"\(Self.colour(f))\"><title>\(Markup.escape(yLabel)) \(Markup.escape(rowLabels[r])), \(Markup.escape(xLabel)) \(Markup.escape(columnLabels[c])): \(Markup.number(v))</title></rect>\n"
            }
        }
        s += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(fmt(plotW))\" height=\"\(fmt(plotH))\" fill=\"none\" stroke=\"#333\"/>\n"
        // column ticks: at most ~16 labels
        let cStep = max(1, Int((Double(columns) / 16).rounded(.up)))
        for c in stride(from: 0, to: columns, by: cStep) {
            s += "<text x=\"\(fmt(left + (Double(c) + 0.5) * cw))\" y=\"\(fmt(top + plotH + 14))\" text-anchor=\"middle\">\(Markup.escape(columnLabels[c]))</text>\n"
        }
        // row ticks: at most ~20 labels
        let rStep = max(1, Int((Double(rows) / 20).rounded(.up)))
        for r in stride(from: 0, to: rows, by: rStep) {
            s += "<text x=\"\(left - 6)\" y=\"\(fmt(top + (Double(r) + 0.5) * rh + 4))\" text-anchor=\"end\">\(Markup.escape(rowLabels[r]))</text>\n"
        }
        s += "<text x=\"\(fmt(left + plotW / 2))\" y=\"\(fmt(top + plotH + 34))\" text-anchor=\"middle\">\(Markup.escape(xLabel))</text>\n"
        s += "<text x=\"16\" y=\"\(fmt(top + plotH / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 16 \(fmt(top + plotH / 2)))\">\(Markup.escape(yLabel))</text>\n"
        // colour bar: 32 bands, top = max
        let bx = left + plotW + barGap
        let bands = 32
        for i in 0..<bands {
            let f = 1 - (Double(i) + 0.5) / Double(bands)
            s += "<rect x=\"\(fmt(bx))\" y=\"\(fmt(top + Double(i) * plotH / Double(bands)))\" width=\"\(barW)\" height=\"\(fmt(plotH / Double(bands) + 0.2))\" fill=\"\(Self.colour(f))\"/>\n"
        }
        s += "<rect x=\"\(fmt(bx))\" y=\"\(top)\" width=\"\(barW)\" height=\"\(fmt(plotH))\" fill=\"none\" stroke=\"#333\"/>\n"
        // Counts get whole-number labels (a mid-scale label of 803.5 selections is not a count).
        let integral = values.allSatisfy { $0 == $0.rounded() }
        for (f, v) in [(0.0, hi), (0.5, (lo + hi) / 2), (1.0, lo)] {
            s += "<text x=\"\(fmt(bx + barW + 4))\" y=\"\(fmt(top + f * plotH + 4))\">\(Markup.number(integral ? v.rounded() : v))</text>\n"
        }
        let lx = bx + barW + 62
        s += "<text x=\"\(fmt(lx))\" y=\"\(fmt(top + plotH / 2))\" text-anchor=\"middle\" transform=\"rotate(90 \(fmt(lx)) \(fmt(top + plotH / 2)))\">\(Markup.escape(valueLabel))</text>\n"
        s += "</svg>\n"
        return s
    }

    private func fmt(_ v: Double) -> String { String(format: "%.2f", v) }
}
