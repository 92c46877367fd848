import Foundation

// A small dependency-free SVG writer for multi-panel line plots: named (x, y) series per panel, linear or log
// axes with ticks, optional error bars, labelled best (minimum-y) points, and a figure legend.
// Nothing here knows what is being plotted.

public enum AxisScale: Sendable, Equatable {
    case linear, log
    /// Log when the positive data span more than `ratio` (max/min), else linear.
    case auto(ratio: Double)
}

public struct PlotPoint: Sendable, Equatable {
    public var x: Double
    public var y: Double
    /// Optional error bar (absolute bounds).
    public var yLow: Double?
    public var yHigh: Double?
    /// A short text drawn beside the point (e.g. which sampler it is).
    public var label: String?
    public init(x: Double, y: Double, yLow: Double? = nil, yHigh: Double? = nil, label: String? = nil) {
        self.x = x; self.y = y; self.yLow = yLow; self.yHigh = yHigh; self.label = label
    }
}

public enum PlotMarker: Sendable, Equatable { case circle, hollowTriangle, square }

public struct PlotSeries: Sendable {
    public var name: String
    public var points: [PlotPoint]
    /// CSS colour.
    public var color: String
    public var dashed: Bool
    public var markers: Bool
    /// Mark and label the point with the smallest y ("y @ x").
    public var labelBest: Bool
    public var marker: PlotMarker
    /// Draw the points only, no connecting line.
    public var pointsOnly: Bool
    public init(name: String, points: [PlotPoint], color: String, dashed: Bool = false, markers: Bool = true,
                labelBest: Bool = false, marker: PlotMarker = .circle, pointsOnly: Bool = false) {
        self.name = name; self.points = points; self.color = color
        self.dashed = dashed; self.markers = markers; self.labelBest = labelBest
        self.marker = marker; self.pointsOnly = pointsOnly
    }
}

public struct PlotPanel: Sendable {
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var xScale: AxisScale
    public var yScale: AxisScale
    public var series: [PlotSeries]
    public init(title: String, xLabel: String, yLabel: String, xScale: AxisScale = .linear,
                yScale: AxisScale = .linear, series: [PlotSeries]) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel
        self.xScale = xScale; self.yScale = yScale; self.series = series
    }
}

public struct LinePlot: Sendable {
    public var title: String
    public var panels: [PlotPanel]
    public var columns: Int
    public var panelWidth: Double = 360
    public var panelHeight: Double = 260

    public init(title: String, panels: [PlotPanel], columns: Int = 3) {
        self.title = title; self.panels = panels; self.columns = max(1, columns)
    }

    /// The compact number format used for tick and point labels (3 significant digits).
    public static func label(_ v: Double) -> String { numberLabel(v) }

    public func write(to path: String) throws {
        try svg().write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// The whole figure as an SVG document.
    public func svg() -> String {
        let rows = (panels.count + columns - 1) / columns
        let width = Double(columns) * panelWidth
        let legendRows = legendLayout(width: width).last.map { $0.row + 1 } ?? 0
        let top = 46.0 + 18 * Double(legendRows)
        let height = top + Double(rows) * panelHeight + 8
        var s = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(fmt(width))" height="\(fmt(height))" \
        viewBox="0 0 \(fmt(width)) \(fmt(height))" font-family="Helvetica, Arial, sans-serif">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(fmt(width / 2))" y="22" text-anchor="middle" font-size="15" font-weight="bold">\(esc(title))</text>

        """
        s += legend(y: 44, width: width)
        for (i, panel) in panels.enumerated() {
            let ox = Double(i % columns) * panelWidth, oy = top + Double(i / columns) * panelHeight
            s += PanelRenderer(panel: panel, x: ox, y: oy, width: panelWidth, height: panelHeight).render()
        }
        s += "</svg>\n"
        return s
    }

    /// Legend entries left to right, wrapped into rows that fit `width` (text width estimated at 6.6 px per
    /// character of 12 px Helvetica), so long names never overlap.
    private func legendLayout(width: Double) -> [(series: PlotSeries, x: Double, row: Int)] {
        var seen = Set<String>(), order = [PlotSeries]()
        for p in panels { for se in p.series where seen.insert(se.name).inserted { order.append(se) } }
        var rows: [[(PlotSeries, Double)]] = [[]], used = 0.0
        for se in order {
            let w = 30 + 6.6 * Double(se.name.count) + 18
            if used + w > width - 20, !rows[rows.count - 1].isEmpty { rows.append([]); used = 0 }
            rows[rows.count - 1].append((se, w)); used += w
        }
        var out: [(series: PlotSeries, x: Double, row: Int)] = []
        for (r, items) in rows.enumerated() {
            var x = max(10, (width - items.reduce(0) { $0 + $1.1 }) / 2)
            for (se, w) in items { out.append((se, x, r)); x += w }
        }
        return out
    }

    private func legend(y: Double, width: Double) -> String {
        var s = ""
        for (se, x, row) in legendLayout(width: width) {
            let y = y + 18 * Double(row)
            s += "<line x1=\"\(fmt(x))\" y1=\"\(fmt(y))\" x2=\"\(fmt(x + 24))\" y2=\"\(fmt(y))\" stroke=\"\(se.color)\" stroke-width=\"2\"\(se.dashed ? " stroke-dasharray=\"5,3\"" : "")/>"
            if se.markers { s += marker(se.marker, x: x + 12, y: y, r: 3, color: se.color) }
            s += "<text x=\"\(fmt(x + 30))\" y=\"\(fmt(y + 4))\" font-size=\"12\">\(esc(se.name))</text>\n"
        }
        return s
    }
}

/// One axis: data range → pixel range, with ticks.
fileprivate struct Axis {
    let log: Bool
    /// Every data value is an integer (batch sizes, NFE): ticks are integers too.
    let integral: Bool
    let lo: Double, hi: Double          // in data units (positive when log)
    let p0: Double, p1: Double          // pixel positions of lo and hi

    init(values: [Double], scale: AxisScale, from p0: Double, to p1: Double) {
        var vals = values.filter { $0.isFinite }
        integral = !vals.isEmpty && vals.allSatisfy { $0 == $0.rounded() }
        let positive = vals.filter { $0 > 0 }
        let useLog: Bool
        switch scale {
        case .linear: useLog = false
        case .log: useLog = !positive.isEmpty
        case .auto(let ratio): useLog = !positive.isEmpty && positive.count == vals.count
            && positive.max()! / positive.min()! > ratio
        }
        if useLog { vals = positive }
        if vals.isEmpty { vals = [0, 1] }
        var lo = vals.min()!, hi = vals.max()!
        if useLog {
            // Pad by 5% of the decades spanned on each side (at least a factor 1.1), so points at the ends sit
            // inside the frame, and do not snap outwards to 1-2-5 values (10…23 would grow to 10…50, half empty).
            if lo == hi { lo /= 2; hi *= 2 }
            let pad = max(Foundation.log10(1.1), 0.05 * Foundation.log10(hi / lo))
            lo /= pow(10, pad); hi *= pow(10, pad)
        } else {
            if lo == hi { lo -= 1; hi += 1 }
            let pad = 0.05 * (hi - lo)
            lo = lo >= 0 && lo - pad < 0 ? 0 : lo - pad
            hi += pad
        }
        log = useLog; self.lo = lo; self.hi = hi; self.p0 = p0; self.p1 = p1
    }

    func pixel(_ v: Double) -> Double {
        let t = log ? (Foundation.log10(max(v, lo * 1e-3)) - Foundation.log10(lo)) / (Foundation.log10(hi) - Foundation.log10(lo))
                    : (v - lo) / (hi - lo)
        return p0 + t * (p1 - p0)
    }

    var ticks: [Double] {
        if log {
            // The coarsest mantissa set that gives at least 3 ticks inside the range (a log axis over less than a
            // decade would otherwise show one tick or none).
            let e0 = Int(Foundation.log10(lo).rounded(.down)), e1 = Int(Foundation.log10(hi).rounded(.up))
            var t = [Double]()
            for mult: [Double] in [[1], [1, 2, 5], [1, 2, 3, 5], [1, 1.5, 2, 3, 4, 5, 7]] {
                t = []
                for e in e0...e1 { for m in mult { let v = m * pow(10, Double(e)); if v >= lo * 0.999 && v <= hi * 1.001 { t.append(v) } } }
                if integral { t = t.filter { $0 >= 1 && $0 == $0.rounded() } }
                if t.count >= 3 || (mult.count == 1 && Foundation.log10(hi / lo) > 4) { break }
            }
            return t
        }
        let raw = (hi - lo) / 6
        let mag = pow(10, Foundation.log10(raw).rounded(.down))
        var step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        if integral { step = max(1, step.rounded(.up)) }
        var t = [Double](), v = (lo / step).rounded(.up) * step
        while v <= hi + 1e-9 * step { t.append(v); v += step }
        return t
    }
}

fileprivate struct PanelRenderer {
    let panel: PlotPanel
    let x: Double, y: Double, width: Double, height: Double

    func render() -> String {
        let left = x + 62, right = x + width - 14, top = y + 26, bottom = y + height - 44
        let pts = panel.series.flatMap { $0.points }
        let xa = Axis(values: pts.map { $0.x }, scale: panel.xScale, from: left, to: right)
        let ya = Axis(values: pts.flatMap { [$0.y, $0.yLow ?? $0.y, $0.yHigh ?? $0.y] }, scale: panel.yScale,
                      from: bottom, to: top)
        var s = "<g>\n<text x=\"\(fmt((left + right) / 2))\" y=\"\(fmt(y + 16))\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">\(esc(panel.title))</text>\n"
        s += "<rect x=\"\(fmt(left))\" y=\"\(fmt(top))\" width=\"\(fmt(right - left))\" height=\"\(fmt(bottom - top))\" fill=\"none\" stroke=\"#333\"/>\n"
        for t in xa.ticks {
            let px = xa.pixel(t)
            s += "<line x1=\"\(fmt(px))\" y1=\"\(fmt(top))\" x2=\"\(fmt(px))\" y2=\"\(fmt(bottom))\" stroke=\"#eee\"/>"
            s += "<line x1=\"\(fmt(px))\" y1=\"\(fmt(bottom))\" x2=\"\(fmt(px))\" y2=\"\(fmt(bottom + 4))\" stroke=\"#333\"/>"
            s += "<text x=\"\(fmt(px))\" y=\"\(fmt(bottom + 15))\" text-anchor=\"middle\" font-size=\"10\">\(tickLabel(t))</text>\n"
        }
        for t in ya.ticks {
            let py = ya.pixel(t)
            s += "<line x1=\"\(fmt(left))\" y1=\"\(fmt(py))\" x2=\"\(fmt(right))\" y2=\"\(fmt(py))\" stroke=\"#eee\"/>"
            s += "<line x1=\"\(fmt(left - 4))\" y1=\"\(fmt(py))\" x2=\"\(fmt(left))\" y2=\"\(fmt(py))\" stroke=\"#333\"/>"
            s += "<text x=\"\(fmt(left - 6))\" y=\"\(fmt(py + 3))\" text-anchor=\"end\" font-size=\"10\">\(tickLabel(t))</text>\n"
        }
        s += "<text x=\"\(fmt((left + right) / 2))\" y=\"\(fmt(bottom + 32))\" text-anchor=\"middle\" font-size=\"11\">\(esc(panel.xLabel + (xa.log ? " (log)" : "")))</text>\n"
        let cy = (top + bottom) / 2
        s += "<text x=\"\(fmt(x + 14))\" y=\"\(fmt(cy))\" text-anchor=\"middle\" font-size=\"11\" transform=\"rotate(-90 \(fmt(x + 14)) \(fmt(cy)))\">\(esc(panel.yLabel + (ya.log ? " (log)" : "")))</text>\n"
        // Series with error bars that share x values are drawn side by side, a few pixels apart, so one's bars do
        // not hide another's (the offset is visual only: the points' x values are unchanged).
        let barred = panel.series.indices.filter { panel.series[$0].points.contains { $0.yLow != nil && $0.yHigh != nil } }
        var dodge = [Double](repeating: 0, count: panel.series.count)
        if barred.count > 1 {
            for (j, k) in barred.enumerated() { dodge[k] = (Double(j) - Double(barred.count - 1) / 2) * 3 }
        }
        // Labels are placed last, around every marker, by LabelPlacer (no overlaps, inside the frame).
        var placer = LabelPlacer(frame: LabelBox(x: left, y: top, width: right - left, height: bottom - top))
        for (k, se) in panel.series.enumerated() where se.markers {
            // The marker's box (triangles reach 4 px from their centre) and a pixel of margin.
            for p in se.points { placer.obstacles.append(LabelBox(x: xa.pixel(p.x) + dodge[k] - 5, y: ya.pixel(p.y) - 5, width: 10, height: 10)) }
        }
        var labels = ""
        for (k, se) in panel.series.enumerated() where !se.points.isEmpty {
            let sorted = se.points.sorted { $0.x < $1.x }
            let path = sorted.map { "\(fmt(xa.pixel($0.x) + dodge[k])),\(fmt(ya.pixel($0.y)))" }.joined(separator: " ")
            if !se.pointsOnly {
                s += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(se.color)\" stroke-width=\"1.8\"\(se.dashed ? " stroke-dasharray=\"5,3\"" : "")/>\n"
            }
            for p in sorted {
                let px = xa.pixel(p.x) + dodge[k]
                if let lo = p.yLow, let hi = p.yHigh {
                    s += "<line x1=\"\(fmt(px))\" y1=\"\(fmt(ya.pixel(lo)))\" x2=\"\(fmt(px))\" y2=\"\(fmt(ya.pixel(hi)))\" stroke=\"\(se.color)\" stroke-width=\"1\"/>"
                }
                if se.markers { s += marker(se.marker, x: px, y: ya.pixel(p.y), r: se.marker == .circle ? 2.8 : 4, color: se.color) }
                if let text = p.label {
                    let at = placer.place(text, at: px, ya.pixel(p.y), fontSize: 9, preferBelow: k % 2 == 1)
                    labels += "<text x=\"\(fmt(at.x))\" y=\"\(fmt(at.y))\" text-anchor=\"\(at.anchor)\" font-size=\"9\" fill=\"\(se.color)\">\(esc(text))</text>"
                }
            }
            if se.labelBest, let best = sorted.min(by: { $0.y < $1.y }) {
                let px = xa.pixel(best.x) + dodge[k], py = ya.pixel(best.y)
                s += "<circle cx=\"\(fmt(px))\" cy=\"\(fmt(py))\" r=\"5\" fill=\"none\" stroke=\"\(se.color)\" stroke-width=\"1.5\"/>"
                let text = numberLabel(best.y) + " @ " + numberLabel(best.x)
                let at = placer.place(text, at: px, py, fontSize: 10, preferBelow: k % 2 == 1)
                labels += "<text x=\"\(fmt(at.x))\" y=\"\(fmt(at.y))\" text-anchor=\"\(at.anchor)\" font-size=\"10\" fill=\"\(se.color)\">\(esc(text))</text>"
            }
            s += "\n"
        }
        s += labels + "\n"
        return s + "</g>\n"
    }
}

fileprivate func tickLabel(_ v: Double) -> String { numberLabel(v) }

fileprivate func marker(_ kind: PlotMarker, x: Double, y: Double, r: Double, color: String) -> String {
    switch kind {
    case .circle: return "<circle cx=\"\(fmt(x))\" cy=\"\(fmt(y))\" r=\"\(fmt(r))\" fill=\"\(color)\"/>"
    case .square: return "<rect x=\"\(fmt(x - r))\" y=\"\(fmt(y - r))\" width=\"\(fmt(2 * r))\" height=\"\(fmt(2 * r))\" fill=\"\(color)\"/>"
    case .hollowTriangle:
        return "<polygon points=\"\(fmt(x)),\(fmt(y - r)) \(fmt(x - r)),\(fmt(y + r * 0.8)) \(fmt(x + r)),\(fmt(y + r * 0.8))\" fill=\"white\" stroke=\"\(color)\" stroke-width=\"1.3\"/>"
    }
}

/// Compact number: 3 significant digits, exponent form outside [1e-3, 1e5).
fileprivate func numberLabel(_ v: Double) -> String {
    if v == 0 { return "0" }
    let a = abs(v)
    if a >= 1e5 || a < 1e-3 { return String(format: "%.2g", v) }
    var s = String(format: a >= 100 ? "%.0f" : a >= 10 ? "%.1f" : a >= 1 ? "%.2f" : "%.3g", v)
    if s.contains(".") && !s.contains("e") {
        while s.hasSuffix("0") { s.removeLast() }
        if s.hasSuffix(".") { s.removeLast() }
    }
    return s
}

fileprivate func fmt(_ v: Double) -> String { String(format: "%.1f", v) }

fileprivate func esc(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
}
