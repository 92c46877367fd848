import Foundation
import Metrics

// Seeds → mean FD with a 95% interval per (integrator, mode, budget); the floor; a text table; the figure.

public struct CurvePoint: Codable, Sendable, Equatable {
    public var integrator: String
    public var dlg: Bool
    public var budget: Int
    /// Mean counted NFE over seeds.
    public var nfe: Double
    public var step: String
    public var nSkip: Int?
    public var fd: MeanInterval
    public var samples: Int
    public var meanStartSigma: Double?
    /// FID-digits over seeds, with the first seed's bootstrap interval (model sources only).
    public var fidDigits: MeanInterval?
    public var fidDigitsLower: Double?
    public var fidDigitsUpper: Double?
    /// DLG: the chains' one-off warm-up NFE spread over the samples they emitted (warm-up × chains ÷ samples);
    /// nfe + this is the cost at equal total model calls.
    public var warmupNFEPerSample: Double?
    enum CodingKeys: String, CodingKey {
        case integrator, dlg, budget, nfe, step, nSkip = "n_skip", fd, samples, meanStartSigma = "mean_start_sigma"
        case fidDigits = "fid_digits", fidDigitsLower = "fid_digits_lower", fidDigitsUpper = "fid_digits_upper"
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
    /// FD of `samples` exact draws (mean over seeds): the finite-sample reference at this sample count.
    public var floor: MeanInterval?
    /// FID-digits of the floor's draws (model sources).
    public var floorFIDDigits: MeanInterval?

    public init(rows: [CurveRow]) {
        source = rows.first?.source ?? ""
        samples = rows.first?.samples ?? 0
        let floors = rows.filter { $0.integrator == "floor" }
        floor = floors.isEmpty ? nil : MeanInterval(floors.map { $0.fd })
        let floorFID = floors.compactMap(\.fidDigits)
        floorFIDDigits = floorFID.isEmpty ? nil : MeanInterval(floorFID)
        seeds = Set(rows.map { $0.seed }).count
        var groups = [String: [CurveRow]](), order = [String]()
        for r in rows where r.integrator != "floor" {
            let k = "\(r.integrator)|\(r.dlg)|\(r.budget)"
            if groups[k] == nil { order.append(k) }
            groups[k, default: []].append(r)
        }
        points = order.map { k in
            let g = groups[k]!, f = g[0]
            let starts = g.compactMap { $0.meanStartSigma }, fids = g.compactMap(\.fidDigits)
            return CurvePoint(integrator: f.integrator, dlg: f.dlg, budget: f.budget,
                              nfe: g.map { $0.nfe }.reduce(0, +) / Double(g.count), step: f.step, nSkip: f.nSkip,
                              fd: MeanInterval(g.map { $0.fd }), samples: f.samples,
                              meanStartSigma: starts.isEmpty ? nil : starts.reduce(0, +) / Double(starts.count),
                              fidDigits: fids.isEmpty ? nil : MeanInterval(fids), fidDigitsLower: f.fidDigitsLower,
                              fidDigitsUpper: f.fidDigitsUpper,
                              warmupNFEPerSample: f.warmupNFE.map { Double($0) * Double(f.chains) / Double(max(f.samples, 1)) })
        }
    }

    /// A plain-text table: one line per integrator and budget, vanilla and DLG side by side.
    public func table() -> String {
        var lines = ["source: \(source)", "samples per cell: \(samples), seeds: \(seeds); FD = mean ± 95% half-width"]
        if let f = floor { lines.append("floor (exact draws): FD \(fmtFD(f))") }
        let header = "integrator  budget |  vanilla NFE  step        FD                |  DLG NFE  n_skip step        s_min   FD"
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
                        + " " + fmtFD(v.fd).padding(toLength: 18, withPad: " ", startingAt: 0) + "|"
                } else { s += String(repeating: " ", count: 42) + "|" }
                if let g = g {
                    s += String(format: "  %7.1f  %6d ", g.nfe, g.nSkip ?? 0) + g.step.padding(toLength: 11, withPad: " ", startingAt: 0)
                        + String(format: " %6.3f  ", g.meanStartSigma ?? .nan) + fmtFD(g.fd)
                }
                lines.append(s)
            }
        }
        return lines.joined(separator: "\n")
    }

    private func fmtFD(_ m: MeanInterval) -> String {
        m.count > 1 ? "\(LinePlot.label(m.mean)) ± \(LinePlot.label(m.halfWidth))" : LinePlot.label(m.mean)
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
    static func bestPanel(_ summaries: [(name: String, summary: CurveSummary)], yLabel: String, colors: [(String, String)]) -> PlotPanel {
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
                        if let f = p.fidDigits { return PlotPoint(x: p.nfe, y: f.mean, yLow: p.fidDigitsLower, yHigh: p.fidDigitsUpper) }
                        return PlotPoint(x: p.nfe, y: p.fd.mean)
                    }
                    if !pts.isEmpty {
                        ss.append(PlotSeries(name: "\(entry.name) \(dlg ? "DLG" : "vanilla")", points: pts, color: dlg ? colors.1 : colors.0,
                                             dashed: i > 0))
                    }
                    if dlg, let w = warmupSeries(sel, name: "\(entry.name) DLG incl. warm-up", color: colors.1, y: \.quality) { ss.append(w) }
                }
                let xs = ss.flatMap { $0.points.map(\.x) }
                if let f = entry.summary.floorFIDDigits ?? entry.summary.floor, let lo = xs.min(), let hi = xs.max(), i == 0 {
                    ss.append(PlotSeries(name: "held-out vs train digits at this n", points: [PlotPoint(x: lo, y: f.mean), PlotPoint(x: hi, y: f.mean)],
                                         color: "#777777", dashed: true, markers: false))
                }
            }
            return PlotPanel(title: integratorNames[k] ?? k.uppercased(), xLabel: "NFE per sample", yLabel: yLabel,
                             xScale: .log, yScale: .auto(ratio: 20), series: ss)
        }
        panels.append(bestPanel(summaries, yLabel: yLabel, colors: palette))
        return LinePlot(title: title, panels: panels, columns: 3)
    }

    public func figure(title: String) -> LinePlot {
        let kinds = points.reduce(into: [String]()) { if !$0.contains($1.integrator) { $0.append($1.integrator) } }
        var panels: [PlotPanel] = kinds.map { k in
            func series(_ dlg: Bool) -> PlotSeries {
                let pts = points.filter { $0.integrator == k && $0.dlg == dlg }.map {
                    PlotPoint(x: $0.nfe, y: $0.fd.mean, yLow: $0.fd.count > 1 ? max($0.fd.lower, $0.fd.mean * 0.05) : nil,
                              yHigh: $0.fd.count > 1 ? $0.fd.upper : nil)
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
                ss.append(PlotSeries(name: "exact draws at this n (finite-sample reference)", points: [PlotPoint(x: lo, y: f.mean), PlotPoint(x: hi, y: f.mean)],
                                     color: "#777777", dashed: true, markers: false))
            }
            return PlotPanel(title: Self.integratorNames[k] ?? k, xLabel: "NFE per sample", yLabel: "FD (data units²)",
                             xScale: .log, yScale: .auto(ratio: 20), series: ss)
        }
        panels.append(Self.bestPanel([("", self)], yLabel: "FD (data units²)", colors: [("#1b6ca8", "#d95f02")]))
        return LinePlot(title: title, panels: panels, columns: 3)
    }
}
