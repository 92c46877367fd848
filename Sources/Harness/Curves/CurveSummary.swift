import Foundation
import Metrics

// Seeds → mean FD with a 95% bootstrap interval per (integrator, mode, budget); the finite-sample reference; a
// text table; the figure.

/// FD of one (integrator, mode, budget) point or of the reference rows: the mean over seeds and a 95% interval from
/// each seed's bootstrap over samples (FrechetBootstrap: bias-shifted percentile interval, lower end ≥ 0). One seed:
/// that seed's interval. S seeds with FDᵢ and interval [FDᵢ − dᵢ, FDᵢ + uᵢ]: mean ∓ √(Σdᵢ²)/S, √(Σuᵢ²)/S (the
/// seeds are independent); since dᵢ ≤ FDᵢ, √(Σdᵢ²)/S ≤ Σdᵢ/S ≤ mean, so the lower end stays ≥ 0 by construction.
/// No interval when a row has none (stores written before intervals were recorded).
public struct FDSummary: Codable, Sendable, Equatable {
    public var mean: Double
    public var lower: Double?
    public var upper: Double?
    public var seeds: Int

    /// (FD, lower, upper) per seed.
    public init(_ values: [(value: Double, lower: Double?, upper: Double?)]) {
        precondition(!values.isEmpty, "FDSummary: no values")
        let s = Double(values.count)
        mean = values.map(\.value).reduce(0, +) / s
        seeds = values.count
        if values.allSatisfy({ $0.lower != nil && $0.upper != nil }) {
            let down = values.map { ($0.value - $0.lower!) * ($0.value - $0.lower!) }.reduce(0, +).squareRoot() / s
            let up = values.map { ($0.upper! - $0.value) * ($0.upper! - $0.value) }.reduce(0, +).squareRoot() / s
            lower = max(0, mean - max(down, 0))
            upper = mean + max(up, 0)
        }
    }
}

public struct CurvePoint: Codable, Sendable, Equatable {
    public var integrator: String
    public var dlg: Bool
    public var budget: Int
    /// Mean counted NFE over seeds.
    public var nfe: Double
    public var step: String
    public var nSkip: Int?
    /// Pixel FD (data units²) over seeds with its bootstrap interval.
    public var fd: FDSummary
    public var samples: Int
    public var meanStartSigma: Double?
    /// FID-digits over seeds with its bootstrap interval (model sources only).
    public var fidDigits: FDSummary?
    /// DLG: the chains' one-off warm-up NFE spread over the samples they emitted (warm-up × chains ÷ samples);
    /// nfe + this is the cost at equal total model calls.
    public var warmupNFEPerSample: Double?
    enum CodingKeys: String, CodingKey {
        case integrator, dlg, budget, nfe, step, nSkip = "n_skip", fd, samples, meanStartSigma = "mean_start_sigma"
        case fidDigits = "fid_digits"
        case warmupNFEPerSample = "warmup_nfe_per_sample"
    }

    /// The value a figure plots: FID-digits for model sources, FD otherwise.
    var quality: Double { fidDigits?.mean ?? fd.mean }
}

public struct CurveSummary: Codable, Sendable {
    public var source: String
    public var samples: Int
    public var seeds: Int
    public var points: [CurvePoint]
    /// The finite-sample reference: FD of `samples` real draws (testbed: exact draws against the exact moments;
    /// model sources: train digits against the held-out digits), the same sample count as every cell. It is what a
    /// perfect sampler scores on average at this n — a reference, not a bound: a cell can land below it by chance.
    public var floor: FDSummary?
    /// FID-digits of the reference draws (model sources).
    public var floorFIDDigits: FDSummary?

    public init(rows: [CurveRow]) {
        source = rows.first?.source ?? ""
        samples = rows.first?.samples ?? 0
        let floors = rows.filter { $0.integrator == "floor" }
        floor = floors.isEmpty ? nil : FDSummary(floors.map { ($0.fd, $0.fdLower, $0.fdUpper) })
        floorFIDDigits = Self.fidSummary(floors)
        seeds = Set(rows.map { $0.seed }).count
        var groups = [String: [CurveRow]](), order = [String]()
        for r in rows where r.integrator != "floor" {
            let k = "\(r.integrator)|\(r.dlg)|\(r.budget)"
            if groups[k] == nil { order.append(k) }
            groups[k, default: []].append(r)
        }
        points = order.map { k in
            let g = groups[k]!, f = g[0]
            let starts = g.compactMap { $0.meanStartSigma }
            return CurvePoint(integrator: f.integrator, dlg: f.dlg, budget: f.budget,
                              nfe: g.map { $0.nfe }.reduce(0, +) / Double(g.count), step: f.step, nSkip: f.nSkip,
                              fd: FDSummary(g.map { ($0.fd, $0.fdLower, $0.fdUpper) }), samples: f.samples,
                              meanStartSigma: starts.isEmpty ? nil : starts.reduce(0, +) / Double(starts.count),
                              fidDigits: Self.fidSummary(g),
                              warmupNFEPerSample: f.warmupNFE.map { Double($0) * Double(f.chains) / Double(max(f.samples, 1)) })
        }
    }

    /// FID-digits over the rows that have it (nil when none does).
    static func fidSummary(_ rows: [CurveRow]) -> FDSummary? {
        let v = rows.compactMap { r in r.fidDigits.map { ($0, r.fidDigitsLower, r.fidDigitsUpper) } }
        return v.isEmpty ? nil : FDSummary(v)
    }

    /// A plain-text table: one line per integrator and budget, vanilla and DLG side by side.
    public func table() -> String {
        var lines = ["source: \(source)", "samples per cell: \(samples), seeds: \(seeds); FD = mean over seeds [95% bootstrap interval over samples]"]
        if let f = floor { lines.append("finite-sample reference (real draws, same sample count; not a bound): FD \(fmtFD(f))") }
        let header = "integrator  budget |  vanilla NFE  step        FD [95%]                |  DLG NFE  n_skip step        s_min   FD [95%]"
        lines.append(header)
        lines.append(String(repeating: "-", count: header.count + 8))
        let kinds = points.reduce(into: [String]()) { if !$0.contains($1.integrator) { $0.append($1.integrator) } }
        for k in kinds {
            let budgets = Array(Set(points.filter { $0.integrator == k }.map { $0.budget })).sorted()
            for b in budgets {
                let v = points.first { $0.integrator == k && !$0.dlg && $0.budget == b }
                let g = points.first { $0.integrator == k && $0.dlg && $0.budget == b }
                var s = k.padding(toLength: 11, withPad: " ", startingAt: 0) + String(format: " %6d |", b)
                if let v = v {
                    s += String(format: "  %7.1f    ", v.nfe) + v.step.padding(toLength: 11, withPad: " ", startingAt: 0)
                        + " " + fmtFD(v.fd).padding(toLength: 24, withPad: " ", startingAt: 0) + "|"
                } else { s += String(repeating: " ", count: 48) + "|" }
                if let g = g {
                    s += String(format: "  %7.1f  %6d ", g.nfe, g.nSkip ?? 0) + g.step.padding(toLength: 11, withPad: " ", startingAt: 0)
                        + String(format: " %6.3f  ", g.meanStartSigma ?? .nan) + fmtFD(g.fd)
                }
                lines.append(s)
            }
        }
        return lines.joined(separator: "\n")
    }

    private func fmtFD(_ m: FDSummary) -> String {
        guard let lo = m.lower, let hi = m.upper else { return LinePlot.label(m.mean) }
        return "\(LinePlot.label(m.mean)) [\(LinePlot.label(lo)), \(LinePlot.label(hi))]"
    }

    /// The Figure-3-style plot: one panel per integrator, NFE on x, FD on y (log when the range is wide), vanilla
    /// and DLG with 95% error bars and their best points labelled, and the floor.
    /// Several sources on one figure (e.g. a DiT-MoE and its dense twin): one panel per integrator, one line per
    /// (source, mode), each source's floor dashed.
    static let integratorNames = ["kar1": "KAR1 (Heun)", "kar2": "KAR2 (churn)", "pf": "Probability Flow", "rk45": "RK45",
                                  "rd": "Reverse Diffusion", "em": "Euler–Maruyama"]

    /// DLG's points again at nfe + amortised warm-up (hollow triangles, no line): DLG at equal total model calls.
    static func warmupSeries(_ pts: [CurvePoint], name: String, color: String, y: (CurvePoint) -> Double) -> PlotSeries? {
        let shifted = pts.compactMap { p in p.warmupNFEPerSample.map { PlotPoint(x: p.nfe + $0, y: y(p)) } }
        return shifted.isEmpty ? nil : PlotSeries(name: name, points: shifted, color: color, marker: .hollowTriangle, pointsOnly: true)
    }

    /// The last panel of both figures: at each budget, the best vanilla and the best DLG sampler of each source,
    /// each point labelled with the integrator that reached it.
    /// `reference`: the finite-sample reference drawn as in the other panels (dashed grey, across the NFE range).
    static func bestPanel(_ summaries: [(name: String, summary: CurveSummary)], yLabel: String, colors: [(String, String)],
                          reference: (name: String, value: Double)? = nil) -> PlotPanel {
        var ss: [PlotSeries] = []
        for (i, entry) in summaries.enumerated() {
            for dlg in [false, true] {
                let budgets = Array(Set(entry.summary.points.filter { $0.dlg == dlg }.map(\.budget))).sorted()
                let pts: [PlotPoint] = budgets.compactMap { b in
                    entry.summary.points.filter { $0.dlg == dlg && $0.budget == b }.min { $0.quality < $1.quality }
                        .map { PlotPoint(x: $0.nfe, y: $0.quality, label: $0.integrator.uppercased()) }
                }
                if !pts.isEmpty {
                    let c = colors[i % colors.count]
                    ss.append(PlotSeries(name: "\(summaries.count > 1 ? entry.name + " " : "")best \(dlg ? "DLG" : "vanilla")", points: pts,
                                         color: dlg ? c.1 : c.0, dashed: i > 0))
                }
            }
        }
        let xs = ss.flatMap { $0.points.map(\.x) }
        if let reference, let lo = xs.min(), let hi = xs.max() {
            ss.append(PlotSeries(name: reference.name, points: [PlotPoint(x: lo, y: reference.value), PlotPoint(x: hi, y: reference.value)],
                                 color: "#777777", dashed: true, markers: false))
        }
        return PlotPanel(title: "Best sampler per NFE", xLabel: "NFE per sample", yLabel: yLabel, xScale: .log, yScale: .auto(ratio: 20), series: ss)
    }

    public static func comparison(_ summaries: [(name: String, summary: CurveSummary)], title: String) -> LinePlot {
        let kinds = summaries.flatMap { $0.summary.points.map(\.integrator) }.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let palette = [("#1b6ca8", "#d95f02"), ("#5aa0d8", "#f0a15e"), ("#2a9d4b", "#b0388f")]
        let fid = summaries.contains { $0.summary.floorFIDDigits != nil }
        let yLabel = fid ? "FID-digits (digit-classifier features)" : "FD (pixels, [0,1] units²)"
        var panels: [PlotPanel] = kinds.map { k in
            var ss: [PlotSeries] = []
            for (i, entry) in summaries.enumerated() {
                let colors = palette[i % palette.count]
                for dlg in [false, true] {
                    let sel = entry.summary.points.filter { $0.integrator == k && $0.dlg == dlg }
                    let pts = sel.map { p -> PlotPoint in
                        if let f = p.fidDigits { return PlotPoint(x: p.nfe, y: f.mean, yLow: f.lower, yHigh: f.upper) }
                        return PlotPoint(x: p.nfe, y: p.fd.mean, yLow: p.fd.lower, yHigh: p.fd.upper)
                    }
                    if !pts.isEmpty {
                        ss.append(PlotSeries(name: "\(entry.name) \(dlg ? "DLG" : "vanilla")", points: pts, color: dlg ? colors.1 : colors.0,
                                             dashed: i > 0))
                    }
                    if dlg, let w = warmupSeries(sel, name: "\(entry.name) DLG incl. warm-up", color: colors.1, y: \.quality) { ss.append(w) }
                }
                let xs = ss.flatMap { $0.points.map(\.x) }
                if let f = entry.summary.floorFIDDigits ?? entry.summary.floor, let lo = xs.min(), let hi = xs.max(), i == 0 {
                    ss.append(PlotSeries(name: "reference: real digits at this n", points: [PlotPoint(x: lo, y: f.mean), PlotPoint(x: hi, y: f.mean)],
                                         color: "#777777", dashed: true, markers: false))
                }
            }
            return PlotPanel(title: integratorNames[k] ?? k.uppercased(), xLabel: "NFE per sample", yLabel: yLabel,
                             xScale: .log, yScale: .auto(ratio: 20), series: ss)
        }
        let first = summaries.first.flatMap { $0.summary.floorFIDDigits ?? $0.summary.floor }
        panels.append(bestPanel(summaries, yLabel: yLabel, colors: palette, reference: first.map { ("reference: real digits at this n", $0.mean) }))
        return LinePlot(title: title, panels: panels, columns: 3)
    }

    public func figure(title: String) -> LinePlot {
        let kinds = points.reduce(into: [String]()) { if !$0.contains($1.integrator) { $0.append($1.integrator) } }
        var panels: [PlotPanel] = kinds.map { k in
            func series(_ dlg: Bool) -> PlotSeries {
                let pts = points.filter { $0.integrator == k && $0.dlg == dlg }.map {
                    // A lower end of 0 cannot be drawn on a log axis: the bar stops at 5% of the value there.
                    p in PlotPoint(x: p.nfe, y: p.fd.mean, yLow: p.fd.lower.map { max($0, p.fd.mean * 0.05) }, yHigh: p.fd.upper)
                }
                return PlotSeries(name: dlg ? "with DLG" : "without DLG", points: pts,
                                  color: dlg ? "#d95f02" : "#1b6ca8", labelBest: true)
            }
            var ss = [series(false), series(true)].filter { !$0.points.isEmpty }
            if let w = Self.warmupSeries(points.filter { $0.integrator == k && $0.dlg }, name: "DLG incl. warm-up", color: "#d95f02", y: { $0.fd.mean }) {
                ss.append(w)
            }
            let xs = ss.flatMap { $0.points.map { $0.x } }
            if let f = floor, let lo = xs.min(), let hi = xs.max() {
                ss.append(PlotSeries(name: "reference: exact draws at this n", points: [PlotPoint(x: lo, y: f.mean), PlotPoint(x: hi, y: f.mean)],
                                     color: "#777777", dashed: true, markers: false))
            }
            return PlotPanel(title: Self.integratorNames[k] ?? k, xLabel: "NFE per sample", yLabel: "FD (data units²)",
                             xScale: .log, yScale: .auto(ratio: 20), series: ss)
        }
        panels.append(Self.bestPanel([("", self)], yLabel: "FD (data units²)", colors: [("#1b6ca8", "#d95f02")],
                                     reference: floor.map { ("reference: exact draws at this n", $0.mean) }))
        return LinePlot(title: title, panels: panels, columns: 3)
    }
}
