import Foundation

/// Grouped vertical bars: one group per category (e.g. a batch size), one bar per series inside each group, an
/// optional interval per bar, a wrapped legend and the value printed above each bar. For few categories, where a
/// line plot would imply a trend between two points.
public struct BarChart: Sendable {
    public struct Series: Sendable {
        public var name: String
        public var color: String
        /// One value per category (nil: no bar), with an optional (low, high) interval.
        public var values: [Double?]
        public var intervals: [(Double, Double)?]
        public var hatched: Bool
        public init(name: String, color: String, values: [Double?], intervals: [(Double, Double)?]? = nil, hatched: Bool = false) {
            self.name = name; self.color = color; self.values = values
            self.intervals = intervals ?? values.map { _ in nil }; self.hatched = hatched
        }
    }

    public var title: String
    public var categories: [String]
    public var categoryLabel: String
    public var yLabel: String
    public var series: [Series]
    /// A dashed horizontal line at this value (e.g. 1 = "balanced"), drawn over the bars, its label in the legend.
    public var reference: (value: Double, label: String)?
    public var width: Double = 760
    public var height: Double = 340

    public init(title: String, categories: [String], categoryLabel: String, yLabel: String, series: [Series]) {
        self.title = title; self.categories = categories; self.categoryLabel = categoryLabel; self.yLabel = yLabel; self.series = series
    }

    public func svg() -> String {
        // Legend rows, estimated at 6.6 px per character of 12 px text.
        // The reference line is a legend entry of its own (a label drawn beside the line would cover bars).
        let entries = series + (reference.map { [Series(name: $0.label, color: "", values: [])] } ?? [])
        var legend: [[(Series, Double)]] = [[]], used = 0.0
        for se in entries {
            let w = 24 + 6.6 * Double(se.name.count) + 18
            if used + w > width - 20, !legend[legend.count - 1].isEmpty { legend.append([]); used = 0 }
            legend[legend.count - 1].append((se, w)); used += w
        }
        let top = 46 + 18 * Double(legend.count) + 10
        let left = 70.0, right = width - 14, bottom = top + height - 50
        let maxY = (series.flatMap { se in se.values.indices.compactMap { i in se.intervals[i]?.1 ?? se.values[i] } } + [reference?.value ?? 0]).max() ?? 1
        let (hi, step) = Self.valueAxis(max: maxY)
        let total = bottom + 46
        func py(_ v: Double) -> Double { bottom - (bottom - top) * v / hi }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(f(width))\" height=\"\(f(total))\" viewBox=\"0 0 \(f(width)) \(f(total))\" font-family=\"Helvetica, Arial, sans-serif\">"
        s += "<defs><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"white\" stroke-width=\"2\"/></pattern></defs>"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
        s += "<text x=\"\(f(width / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">\(Markup.escape(title))</text>\n"
        for (r, items) in legend.enumerated() {
            var x = max(10, (width - items.reduce(0) { $0 + $1.1 }) / 2)
            let y = 44 + 18 * Double(r)
            for (se, w) in items {
                if se.color.isEmpty {   // the reference line's entry
                    s += "<line x1=\"\(f(x))\" y1=\"\(f(y))\" x2=\"\(f(x + 16))\" y2=\"\(f(y))\" stroke=\"#444\" stroke-dasharray=\"5,3\"/>"
                } else {
                    s += "<rect x=\"\(f(x))\" y=\"\(f(y - 6))\" width=\"16\" height=\"12\" fill=\"\(se.color)\"/>"
                }
                if se.hatched { s += "<rect x=\"\(f(x))\" y=\"\(f(y - 6))\" width=\"16\" height=\"12\" fill=\"url(#hatch)\"/>" }
                s += "<text x=\"\(f(x + 22))\" y=\"\(f(y + 4))\" font-size=\"12\">\(Markup.escape(se.name))</text>"
                x += w
            }
        }
        s += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(right - left))\" height=\"\(f(bottom - top))\" fill=\"none\" stroke=\"#333\"/>\n"
        var t = 0.0
        while t <= hi + 1e-9 {
            s += "<line x1=\"\(f(left))\" y1=\"\(f(py(t)))\" x2=\"\(f(right))\" y2=\"\(f(py(t)))\" stroke=\"#eee\"/>"
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(py(t) + 3))\" text-anchor=\"end\" font-size=\"10\">\(LinePlot.label(t))</text>\n"
            t += step
        }
        let groupW = (right - left) / Double(max(categories.count, 1))
        let barW = min(60, groupW * 0.8 / Double(max(series.count, 1)))
        for (c, name) in categories.enumerated() {
            let gx = left + groupW * Double(c) + (groupW - barW * Double(series.count)) / 2
            for (k, se) in series.enumerated() {
                guard c < se.values.count, let v = se.values[c] else { continue }
                let x = gx + barW * Double(k)
                s += "<rect x=\"\(f(x + 1))\" y=\"\(f(py(v)))\" width=\"\(f(barW - 2))\" height=\"\(f(bottom - py(v)))\" fill=\"\(se.color)\"><title>\(Markup.escape(se.name)): \(LinePlot.label(v))</title></rect>"
                if se.hatched { s += "<rect x=\"\(f(x + 1))\" y=\"\(f(py(v)))\" width=\"\(f(barW - 2))\" height=\"\(f(bottom - py(v)))\" fill=\"url(#hatch)\"/>" }
                var labelY = py(v) - 3
                if let (lo, hiV) = se.intervals[c] {
                    let cx = x + barW / 2
                    s += "<line x1=\"\(f(cx))\" y1=\"\(f(py(lo)))\" x2=\"\(f(cx))\" y2=\"\(f(py(hiV)))\" stroke=\"#222\"/>"
                    s += "<line x1=\"\(f(cx - 3))\" y1=\"\(f(py(hiV)))\" x2=\"\(f(cx + 3))\" y2=\"\(f(py(hiV)))\" stroke=\"#222\"/>"
                    labelY = min(labelY, py(hiV) - 3)
                }
                if barW >= 26 {  // narrower bars: the value is in the bar's tooltip and the CSV, not printed over its neighbours
                    s += "<text x=\"\(f(x + barW / 2))\" y=\"\(f(labelY))\" text-anchor=\"middle\" font-size=\"9\">\(LinePlot.label(v))</text>"
                }
            }
            s += "<text x=\"\(f(left + groupW * (Double(c) + 0.5)))\" y=\"\(f(bottom + 15))\" text-anchor=\"middle\" font-size=\"11\">\(Markup.escape(name))</text>\n"
        }
        if let ref = reference {
            s += "<line x1=\"\(f(left))\" y1=\"\(f(py(ref.value)))\" x2=\"\(f(right))\" y2=\"\(f(py(ref.value)))\" stroke=\"#444\" stroke-dasharray=\"5,3\"/>"

        }
        s += "<text x=\"\(f((left + right) / 2))\" y=\"\(f(bottom + 34))\" text-anchor=\"middle\" font-size=\"11\">\(Markup.escape(categoryLabel))</text>"
        let cy = (top + bottom) / 2
        s += "<text x=\"16\" y=\"\(f(cy))\" text-anchor=\"middle\" font-size=\"11\" transform=\"rotate(-90 16 \(f(cy)))\">\(Markup.escape(yLabel))</text>"
        return s + "</svg>\n"
    }

    private func f(_ v: Double) -> String { String(format: "%.1f", v) }

    /// The value axis for bars up to `max` (> 0): a tick step of 1, 2, 2.5 or 5 × 10^k giving 4–6 intervals, and
    /// the top, the first multiple of the step with at least 8% head room above `max` (for the value labels). A
    /// top rounded to the next 1-2-5 value instead could leave half the plot empty (9.6 → 20).
    static func valueAxis(max: Double) -> (top: Double, step: Double) {
        guard max > 0, max.isFinite else { return (1, 0.2) }
        let needed = max * 1.08
        let raw = needed / 5
        let mag = pow(10, log10(raw).rounded(.down))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * mag }.first { $0 >= raw * (1 - 1e-12) } ?? 10 * mag
        return ((needed / step).rounded(.up) * step, step)
    }
}
