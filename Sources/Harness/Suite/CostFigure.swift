// The cost part's figure: single-stream median milliseconds per image (with the median's bootstrap interval) against batch size, one line per
// (model, execution), so batching efficiency and the MoE/dense gap read off one panel.
enum CostFigure {
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]

    static func latencyByBatch(_ cells: [CostCell]) -> String? {
        let single = cells.filter { $0.scenario == Scenario.singleStream.rawValue }
        var keys: [String] = []
        for c in single where !keys.contains("\(c.name) (\(c.executionLabel))") { keys.append("\(c.name) (\(c.executionLabel))") }
        guard !keys.isEmpty else { return nil }
        let series = keys.enumerated().map { i, key in
            PlotSeries(name: key,
                       points: single.filter { "\($0.name) (\($0.executionLabel))" == key }.map { c in
                           PlotPoint(x: Double(c.batch), y: c.latency.medianMs / Double(c.imagesPerQuery),
                                     yLow: c.latency.medianInterval.map { $0.lower / Double(c.imagesPerQuery) },
                                     yHigh: c.latency.medianInterval.map { $0.upper / Double(c.imagesPerQuery) })
                       },
                       color: palette[i % palette.count], dashed: key.hasSuffix("(cluster)"))
        }
        let panel = PlotPanel(title: "median latency per image", xLabel: "batch (images per query)", yLabel: "ms per image",
                              series: series)
        var plot = LinePlot(title: "Single-stream cost by batch size", panels: [panel], columns: 1)
        plot.panelWidth = 760  // one wide panel: the legend carries long (model, execution) names
        plot.panelHeight = 340
        return plot.svg()
    }
}
