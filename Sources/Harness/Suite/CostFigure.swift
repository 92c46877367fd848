// The cost part's figure: single-stream median milliseconds per requested image (query latency ÷ batch, the unit
// of the tables; a CFG query forwards twice as many images), with the median's bootstrap interval, by batch size,
// one series per (model, execution). Grouped bars for one or two batch sizes, lines (integer batch ticks) from three on.
enum CostFigure {
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]

    static func latencyByBatch(_ cells: [CostCell]) -> String? {
        let single = cells.filter { $0.scenario == Scenario.singleStream.rawValue }
        // "digits-moe, in-process" / "digits-moe, cluster (f32+shuffle+auto)": no nested parentheses, no snake case.
        let key = { (c: CostCell) in "\(c.name), \(c.executionLabel.replacingOccurrences(of: "in_process", with: "in-process"))" }
        var keys: [String] = []
        for c in single where !keys.contains(key(c)) { keys.append(key(c)) }
        guard !keys.isEmpty else { return nil }
        let batches = Array(Set(single.map(\.batch))).sorted()
        let per = { (c: CostCell, ms: Double) in ms / Double(max(c.batch, 1)) }
        let interval = { (c: CostCell) in c.latency.medianInterval.map { (per(c, $0.lower), per(c, $0.upper)) } }
        let title = "Single-stream median latency per requested image (95% interval of the median)"
        if batches.count < 3 {
            let series = keys.enumerated().map { i, k in
                let cellsOf = batches.map { b in single.first { key($0) == k && $0.batch == b } }
                return BarChart.Series(name: k, color: palette[i % palette.count],
                                       values: cellsOf.map { $0.map { per($0, $0.latency.medianMs) } },
                                       intervals: cellsOf.map { $0.flatMap(interval) }, hatched: k.contains("cluster"))
            }
            return BarChart(title: title, categories: batches.map { "batch \($0)" }, categoryLabel: "images per query",
                            yLabel: "ms per image", series: series).svg()
        }
        let series = keys.enumerated().map { i, k in
            PlotSeries(name: k, points: single.filter { key($0) == k }.map { c in
                PlotPoint(x: Double(c.batch), y: per(c, c.latency.medianMs), yLow: interval(c)?.0, yHigh: interval(c)?.1)
            }, color: palette[i % palette.count], dashed: k.contains("cluster"))
        }
        var plot = LinePlot(title: title, panels: [PlotPanel(title: "", xLabel: "batch (images per query)", yLabel: "ms per image",
                                                              xScale: .auto(ratio: 8), series: series)], columns: 1)
        plot.panelWidth = 760
        plot.panelHeight = 340
        return plot.svg()
    }
}
