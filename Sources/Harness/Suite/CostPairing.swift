// MoE against dense as paired, alternating measurements: for one batch size, query i of the pair runs model A then
// B when i is even and B then A when odd (so neither model always runs second, after the other warmed the caches),
// and the latency ratio is the median of the per-pair ratios aᵢ/bᵢ with a percentile bootstrap over pairs
// (Metrics/Bootstrap.swift). Both queries of a pair see nearly the same machine state, so load that drifts over
// seconds cancels in the ratio, which an unpaired ratio of two cells' medians measured minutes apart does not.
import DiT
import Foundation
import Wire
import Metrics

public struct PairedComparison: Codable, Sendable, Equatable {
    /// e.g. "DiT-MoE-S/2-8E2A vs DiT-S/2", or "… : cluster (codec) vs in-process".
    public var label: String
    public var first: String
    public var second: String
    public var batch: Int
    /// "paired" (alternating queries, median of per-pair ratios) or "unpaired" (ratio of two cells' medians).
    public var method: String
    /// Pairs (paired) or the smaller side's query count (unpaired).
    public var count: Int
    /// Latency of the first over the second, and its 95% percentile-bootstrap interval (absent below 5).
    public var ratio: Double
    public var interval: BootstrapInterval?
    public var activatedParameterRatio: Double
    public var flopRatio: Double
    /// Paired: the per-pair latencies (ms), in order.
    public var firstMs: [Double]?
    public var secondMs: [Double]?
}

enum CostPairing {
    /// Fewest pairs measured (more when min_iterations asks for more), and the fewest kept when max_duration_s stops
    /// the run early.
    static let minimumPairs = 20
    static let minimumPairsWhenCut = BootstrapPolicy.minimumCount

    /// Alternating single-stream queries of `a` and `b` at `batch`.
    static func measure(_ a: DiTModel, _ b: DiTModel, labels: (String, String), batch: Int, suite: CostSuite, run: RunSettings,
                        seed: UInt64) throws -> PairedComparison {
        let qa = CostQuery(model: a, requested: batch, cfg: suite.cfg, seed: seed)
        let qb = CostQuery(model: b, requested: batch, cfg: suite.cfg, seed: seed)
        for _ in 0..<max(run.warmupIterations, 1) { try qa.run(); try qb.run() }
        let want = max(minimumPairs, run.minIterations)
        var ta: [Double] = [], tb: [Double] = []
        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        func time(_ q: CostQuery) throws -> Double {
            let s = DispatchTime.now().uptimeNanoseconds
            try q.run()
            return Double(DispatchTime.now().uptimeNanoseconds - s) / 1e6
        }
        while true {
            if ta.count % 2 == 0 {
                ta.append(try time(qa)); tb.append(try time(qb))
            } else {
                tb.append(try time(qb)); ta.append(try time(qa))
            }
            let e = elapsed()
            if ta.count >= want && e >= run.minDurationSeconds { break }
            if let maxD = run.maxDurationSeconds, e >= maxD, ta.count >= minimumPairsWhenCut { break }
        }
        let ratio = ta.count >= BootstrapPolicy.minimumCount ? Bootstrap.pairedRatio(ta, tb)
            : (median(zip(ta, tb).map { $0 / $1 }), nil as BootstrapInterval?)
        let ca = ModelCost(ModelShape(a.config)), cb = ModelCost(ModelShape(b.config))
        return PairedComparison(label: "\(labels.0) vs \(labels.1)", first: labels.0, second: labels.1, batch: batch, method: "paired",
                                count: ta.count, ratio: ratio.0, interval: ratio.1,
                                activatedParameterRatio: Double(ca.activatedParameters) / Double(cb.activatedParameters),
                                flopRatio: ca.trueGFLOPs / cb.trueGFLOPs, firstMs: ta, secondMs: tb)
    }

    /// Cluster against in-process single-stream cells of the same model and batch: unpaired ratio of medians.
    static func clusterAgainstInProcess(_ cells: [CostCell]) -> [PairedComparison] {
        let single = cells.filter { $0.scenario == Scenario.singleStream.rawValue }
        var out: [PairedComparison] = []
        for m in single where m.execution == ExecutionMode.inProcess.rawValue && m.kind == "MoE" {
            for cl in single where cl.model == m.model && cl.batch == m.batch && cl.execution == ExecutionMode.cluster.rawValue {
                let a = cl.latency.samplesMs ?? [], b = m.latency.samplesMs ?? []
                let enough = min(a.count, b.count) >= BootstrapPolicy.minimumCount
                let r = enough ? Bootstrap.ratioOfMedians(a, over: b) : (cl.latency.medianMs / m.latency.medianMs, nil as BootstrapInterval?)
                out.append(PairedComparison(label: "\(m.name): \(cl.executionLabel) vs in-process", first: cl.executionLabel,
                                            second: "in_process", batch: m.batch, method: "unpaired",
                                            count: min(cl.latency.count, m.latency.count), ratio: r.0, interval: r.1,
                                            activatedParameterRatio: 1, flopRatio: 1, firstMs: nil, secondMs: nil))
            }
        }
        return out
    }
}

extension SuiteRunner {
    func runCost(_ suite: CostSuite, store: ResultsStore) throws -> ResultPart {
        let roofline = try self.roofline(store: store)
        let runner = CostRunner(suite: suite, run: profile.run, progress: progress, roofline: roofline, precision: precision.rawValue)
        var notes: [String] = ["Roofline: \(roofline.description)."]
        var cells: [CostCell] = [], pairs: [PairedComparison] = []
        var inProcess: [String: DiTModel] = [:]
        let codecs = profile.codecs.isEmpty ? [ShardOptions.default] : profile.codecs
        let seed = profile.run.seeds.first ?? 0
        for id in suite.models + suite.baselines {
            let (config, source) = try resolve(id)
            progress.say("cost: loading \(config.name) (\(id))")
            let weights = try DiTWeights(config: config, source: source, precision: precision)
            func measureAll(_ model: DiTModel, _ execution: ExecutionMode, codec: String?) throws {
                for batch in suite.batchSizes {
                    for scenario in suite.scenarios {
                        progress.say("cost: \(config.name) \(execution.rawValue)\(codec.map { " (\($0))" } ?? "") batch \(batch) \(scenario.rawValue)")
                        let cell = try runner.measure(model: model, id: id, execution: execution, codec: codec, batch: batch,
                                                      scenario: scenario, seed: seed)
                        progress.say(String(format: "      median %.2f ms (IQR %.2f, n %d), %.2f images/s, %.0f%% of roofline%@",
                                            cell.latency.medianMs, cell.latency.iqrMs, cell.latency.count, cell.imagesPerSecond,
                                            100 * cell.fractionOfRoofline, cell.rooflineWarning == nil ? "" : " — ABOVE THE ROOFLINE"))
                        cells.append(cell)
                    }
                }
            }
            for execution in suite.execution {
                switch execution {
                case .inProcess:
                    let model = try DiTModel(weights: weights)
                    inProcess[id] = model
                    try measureAll(model, .inProcess, codec: nil)
                case .cluster:
                    guard config.isMoE else { continue }
                    guard let settings = profile.cluster else { throw SuiteError.noCluster }
                    // One session per model: the workers load exactly this model's experts.
                    progress.say("cost: starting the cluster from \(settings.hosts) for \(config.name)")
                    let session = try openCluster(settings, config, source)
                    defer { session.shutdown() }
                    if !notes.contains(where: { $0.hasPrefix("Cluster:") }) { notes.append("Cluster: \(session.summary).") }
                    for codec in codecs {
                        let model = try DiTModel(weights: weights, executor: try session.executor(for: weights, codec: codec))
                        try measureAll(model, .cluster, codec: codec.description)
                    }
                }
            }
            // Keep what is finished: rewrite the part after every model.
            try store.add(try costPart(cells, pairs: pairs, suite: suite, roofline: roofline, notes: notes, store: store, final: false))
        }
        // MoE against each dense baseline: paired, alternating queries of both in-process models.
        for m in suite.models {
            guard let a = inProcess[m], a.config.isMoE else { continue }
            for bId in suite.baselines {
                guard let b = inProcess[bId] else { continue }
                for batch in suite.batchSizes {
                    progress.say("cost: \(a.config.name) vs \(b.config.name) batch \(batch), paired alternating queries")
                    let p = try CostPairing.measure(a, b, labels: (a.config.name, b.config.name), batch: batch, suite: suite,
                                                    run: profile.run, seed: seed)
                    progress.say(String(format: "      %.2f× the latency (%@, %d pairs)", p.ratio,
                                        p.interval.map { String(format: "95%% %.2f–%.2f", $0.lower, $0.upper) } ?? "no interval", p.count))
                    pairs.append(p)
                }
            }
        }
        return try costPart(cells, pairs: pairs, suite: suite, roofline: roofline, notes: notes, store: store, final: true)
    }

    func costPart(_ cells: [CostCell], pairs: [PairedComparison], suite: CostSuite, roofline: RooflineRecord, notes: [String],
                  store: ResultsStore, final: Bool) throws -> ResultPart {
        let comparisons = pairs + CostPairing.clusterAgainstInProcess(cells)
        let tables = try [CostTables.cells(cells, roofline: roofline), CostTables.comparisons(comparisons), CostTables.phases(cells)]
            .map { try store.writeCSV($0) }
        var figures: [ResultFigure] = []
        if final, let svg = CostFigure.latencyByBatch(cells) {
            try store.writeSVG("cost_latency.svg", svg)
            figures.append(ResultFigure(id: "cost_latency", title: "Single-stream latency per requested image by batch size", file: "cost_latency.svg",
                                        caption: "Median query latency ÷ requested images (the tables' unit; a CFG query forwards twice as many), with the median's 95% bootstrap interval; lower is better."))
        }
        var summary = notes
        let over = cells.filter { $0.rooflineWarning != nil }
        if let worst = over.max(by: { $0.fractionOfRoofline < $1.fractionOfRoofline }) {
            summary.insert("Measurement problem: \(over.count) cell(s) ran above the roofline (worst \(worst.name) \(worst.executionLabel) batch \(worst.batch) \(worst.scenario): \(worst.rooflineWarning!)). Measure the peak on an idle machine, or give a known one with --peak / --peak-from.", at: 0)
        }
        for p in comparisons {
            let ci = p.interval.map { String(format: " (95%% interval %.2f–%.2f", $0.lower, $0.upper) } ?? " (no interval"
            summary.append(String(format: "%@ at batch %d: %.2f× the latency%@, %@ over %d %@); %.2f× the FLOPs.", p.label, p.batch, p.ratio, ci,
                                  p.method, p.count, p.method == "paired" ? "pairs" : "queries", p.flopRatio))
        }
        return ResultPart(id: "cost", title: "Inference cost: dense versus MoE", status: final ? .done : .running,
                          summary: summary, tables: tables, figures: figures,
                          data: try JSONValue.from(CostData(cells: cells, pairs: comparisons, roofline: roofline)))
    }
}
