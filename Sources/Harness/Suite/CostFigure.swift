// The cost part's figure: single-stream p50 milliseconds per requested image (query latency ÷ batch, the unit
// of the tables; a CFG query forwards twice as many images) by batch size, one series per (model, execution).
// Grouped bars for one or two batch sizes, lines (integer batch ticks) from three on.
enum CostFigure {
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]

    static func latencyByBatch(_ cells: [CostCell]) -> String? {
        let single = cells.filter { $0.scenario == Scenario.singleStream.rawValue }
        let key = { (c: CostCell) in "\(c.name) (\(c.executionLabel))" }
        var keys: [String] = []
        for c in single where !keys.contains(key(c)) { keys.append(key(c)) }
        guard !keys.isEmpty else { return nil }
        let batches = Array(Set(single.map(\.batch))).sorted()
        let perImage = { (c: CostCell) in c.latency.p50Ms / Double(max(c.batch, 1)) }
        let title = "Single-stream p50 latency per requested image"
        if batches.count < 3 {
            let series = keys.enumerated().map { i, k in
                BarChart.Series(name: k, color: palette[i % palette.count], values: batches.map { b in
                    single.first { key($0) == k && $0.batch == b }.map(perImage)
                }, hatched: k.contains("cluster"))
            }
            return BarChart(title: title, categories: batches.map { "batch \($0)" }, categoryLabel: "images per query",
                            yLabel: "ms per image", series: series).svg()
        }
        let series = keys.enumerated().map { i, k in
            PlotSeries(name: k, points: single.filter { key($0) == k }.map { PlotPoint(x: Double($0.batch), y: perImage($0)) },
                       color: palette[i % palette.count], dashed: k.contains("cluster"))
        }
        var plot = LinePlot(title: title, panels: [PlotPanel(title: "", xLabel: "batch (images per query)", yLabel: "ms per image",
                                                              xScale: .auto(ratio: 8), series: series)], columns: 1)
        plot.panelWidth = 760
        plot.panelHeight = 340
        return plot.svg()
    }
}
