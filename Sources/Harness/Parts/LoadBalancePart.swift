// Turns a routing recorder into the "load_balance" part of a results directory: per-layer metrics table,
// per-worker / per-NUMA tables, placement what-if, heatmaps (class × expert raw counts; position × expert and
// step × expert min–max scaled per layer, as DiT-MoE's scripts) with their CSVs (raw counts).
import Foundation
import Metrics

public enum LoadBalancePart {
    /// Per-layer balancedness and MaxVio of several models sampled the same way, side by side.
    public static func ablationTable(_ reports: [(String, LoadBalanceReport)]) -> ResultTable {
        let layers = reports.map { $0.1.layers.count }.max() ?? 0
        var columns: [ResultTable.Column] = [.init("layer")]
        for (id, _) in reports { columns += [.init("\(id) balancedness", unit: "mean/max"), .init("\(id) MaxVio", unit: "(max−mean)/mean")] }
        let rows: [[JSONValue]] = (0..<layers).map { l in
            [.number(Double(l))] + reports.flatMap { r -> [JSONValue] in
                l < r.1.layers.count ? [.number(r.1.layers[l].experts.balancedness), .number(r.1.layers[l].experts.maxVio)] : [.null, .null]
            }
        }
        return ResultTable(id: "load_balance_ablations", title: "Balance-loss and shared-expert ablations: per-layer balance",
                           columns: columns, rows: rows,
                           note: "Each model sampled with the same sampler, steps, classes and seed; balancedness 1 = every expert equally loaded.")
    }

    /// Writes the CSV/SVG files through `store` and returns the part (not yet added to the store).
    public static func make(recorder: ExpertLoadRecorder, placement: ExpertPlacement?, extraSlotsPerWorker: Int,
                            heatmapLayers: [Int]?, store: ResultsStore, title: String = "Expert load balance") throws -> ResultPart {
        let loads = recorder.expertLoadMatrix()
        let report = LoadBalanceReport(loads: loads, placement: placement)
        let whatIf = placement.map { PlacementPlanner.whatIf(loads: loads, current: $0, extraSlotsPerWorker: extraSlotsPerWorker) }

        let n = { (d: Double) in JSONValue.number(d) }
        var perLayer = ResultTable(
            id: "load_balance_layers", title: "Per-layer balance over experts",
            columns: [.init("layer"), .init("selections", unit: "count"), .init("balancedness", unit: "mean/max"),
                      .init("MaxVio", unit: "(max−mean)/mean"), .init("CV", unit: "σ/mean"),
                      .init("entropy", unit: "bits"), .init("normalised entropy", unit: "H/ln E"),
                      .init("dead experts", unit: "fraction")],
            rows: report.layers.map { l in
                [l.layer.map { .number(Double($0)) } ?? .null, n(l.experts.total), n(l.experts.balancedness),
                 n(l.experts.maxVio), n(l.experts.cv), n(l.experts.entropyBits), n(l.experts.normalizedEntropy),
                 n(l.experts.deadFraction)]
            } + [[.string("all layers"), n(report.summed.experts.total), n(report.overall.expertBalancedness), n(report.overall.meanMaxVio),
                  n(report.overall.meanCV), .null, n(report.overall.meanNormalizedEntropy), .null]],
            note: "Balancedness, everywhere in this part: per layer mean/max of the loads; over all layers Σ_l mean_l / Σ_l max_l (each layer waits for its most loaded expert or worker, so sums of maxima are what costs time). The all-layers row gives that, and the mean over layers of MaxVio, CV and normalised entropy; worst MaxVio \(Markup.number(report.overall.worstMaxVio)) at layer \(report.overall.worstLayer).")
        perLayer = try store.writeCSV(perLayer)
        var tables = [perLayer]
        var summary = [
            "\(recorder.recordedTokens) tokens recorded over \(recorder.dims.layers) layers × \(recorder.dims.steps) steps; each counts one selection per top-k slot.",
            "Overall expert balancedness \(Markup.number(report.overall.expertBalancedness)) (1 = perfect), mean MaxVio \(Markup.number(report.overall.meanMaxVio)), mean normalised entropy \(Markup.number(report.overall.meanNormalizedEntropy)).",
        ]
        if recorder.rejectedTokens > 0 || recorder.rejectedSlots > 0 {
            summary.append("Ignored out-of-range records: \(recorder.rejectedTokens) tokens, \(recorder.rejectedSlots) slots.")
        }

        if let placement, let whatIf {
            var workers = ResultTable(
                id: "load_balance_workers", title: "Per-worker load (all layers summed)",
                columns: [.init("worker"), .init("NUMA node"), .init("experts"), .init("load", unit: "selections"),
                          .init("load / mean", unit: "ratio")],
                rows: placement.workers.enumerated().map { i, w in
                    let load = report.summed.workerLoads![i], mean = report.summed.workers!.mean
                    return [.string(w.name), .number(Double(w.numaNode)), .string(w.experts.map(String.init).joined(separator: " ")),
                            n(load), n(mean > 0 ? load / mean : 0)]
                },
                note: "An expert with r replicas contributes load/r to each. Worker balancedness Σ_l mean/Σ_l max = \(Markup.number(report.overall.workerBalancedness ?? 1)); NUMA-node balancedness \(Markup.number(report.overall.numaBalancedness ?? 1)).")
            workers = try store.writeCSV(workers)
            var numa = ResultTable(
                id: "load_balance_numa", title: "Per-NUMA-node load (all layers summed)",
                columns: [.init("NUMA node"), .init("load", unit: "selections")],
                rows: zip(report.summed.numaNodeIDs!, report.summed.numaLoads!).map { [.number(Double($0)), n($1)] })
            numa = try store.writeCSV(numa)
            // Balancedness over all layers on the same definition as the per-worker table: Σ_l mean_l / Σ_l max_l,
            // i.e. (total load / workers) / critical path; improvement as the ratio of critical paths.
            func balancedness(_ c: PlacementCost) -> Double {
                c.criticalPathLoad > 0 ? c.workerLoads.reduce(0, +) / Double(max(c.workerLoads.count, 1)) / c.criticalPathLoad : 1
            }
            let gain = whatIf.rebalanced.criticalPathLoad > 0 ? whatIf.current.criticalPathLoad / whatIf.rebalanced.criticalPathLoad : 1
            var what = ResultTable(
                id: "placement_what_if", title: "Placement what-if (greedy replicas + LPT packing)",
                columns: [.init("placement"), .init("max worker load", unit: "selections"),
                          .init("balancedness", unit: "Σ mean/Σ max"), .init("critical path Σ_l max_w", unit: "selections"),
                          .init("experts per worker")],
                rows: [
                    [.string("current (hosts)"), n(whatIf.current.maxWorkerLoad), n(balancedness(whatIf.current)),
                     n(whatIf.current.criticalPathLoad), .string(placement.workers.map { $0.experts.map(String.init).joined(separator: " ") }.joined(separator: " | "))],
                    [.string("rebalanced (+\(extraSlotsPerWorker) slot\(extraSlotsPerWorker == 1 ? "" : "s")/worker)"),
                     n(whatIf.rebalanced.maxWorkerLoad), n(balancedness(whatIf.rebalanced)), n(whatIf.rebalanced.criticalPathLoad),
                     .string(whatIf.rebalancedPlacement.workers.map { $0.experts.map(String.init).joined(separator: " ") }.joined(separator: " | "))],
                    [.string("lower bound"), n(whatIf.lowerBound), .null, .null, .null],
                ],
                note: "Replicas per expert: \(whatIf.replicas.map(String.init).joined(separator: " ")). Critical path: the time-relevant load (each layer waits for its most loaded worker); ×\(Markup.number(gain)) shorter rebalanced. Max worker load: of the layer-summed loads.")
            what = try store.writeCSV(what)
            tables += [workers, numa, what]
            summary.append(String(format: "Placement what-if: critical path %@ selections now, %@ rebalanced (×%@ shorter; worker balancedness %@ → %@).",
                                  Markup.number(whatIf.current.criticalPathLoad), Markup.number(whatIf.rebalanced.criticalPathLoad),
                                  Markup.number(gain), Markup.number(balancedness(whatIf.current)), Markup.number(balancedness(whatIf.rebalanced))))
        }

        // Routing dependence on step, position and class, and the paper's claims as verdicts.
        let dependences = RoutingVerdicts.dependences(recorder)
        let verdicts = RoutingVerdicts.verdicts(dependences, normalizedEntropyPerLayer: report.layers.map(\.experts.normalizedEntropy))
        if !dependences.isEmpty {
            var dep = ResultTable(
                id: "routing_dependence", title: "Does expert choice depend on step, position, class?",
                columns: [.init("layer"), .init("factor"), .init("I(E;F)", unit: "bits"), .init("H(E)", unit: "bits"),
                          .init("null mean", unit: "bits"), .init("excess", unit: "(I − null)/H(E)"), .init("p", unit: "permutation")],
                rows: dependences.map { d in
                    [.number(Double(d.layer ?? -1)), .string(d.factor), n(d.mutualInformationBits), n(d.expertEntropyBits),
                     n(d.nullMean), n(d.excess), n(d.pValue)]
                },
                note: "Mutual information between the expert of each counted top-k slot and the factor; null: the factor's labels shuffled over the slots (\(dependences.first!.permutations) permutations), p = (1 + #null ≥ I)/(1 + permutations).")
            dep = try store.writeCSV(dep)
            var ver = ResultTable(
                id: "routing_verdicts", title: "The paper's routing claims on this model",
                columns: [.init("claim"), .init("verdict"), .init("statistic")],
                rows: verdicts.map { [.string($0.claim), .string($0.verdict.rawValue), .string($0.statistic)] },
                note: "Thresholds: a factor matters when p < 0.01 in at least half the layers and the median excess is ≥ 0.01; class is negligible below 0.01 or a quarter of the weaker of step/position; depth trend by Spearman ρ ≥ 0.5.")
            ver = try store.writeCSV(ver)
            tables += [ver, dep]
            summary += verdicts.map { "\($0.claim): \($0.verdict.rawValue) (\($0.statistic))." }
        }

        var figures: [ResultFigure] = []
        if !loads.isEmpty {
            try store.writeSVG("expert_load.svg", expertLoadChart(loads).svg())
            figures.append(ResultFigure(id: "expert_load", title: "Per-expert load by layer", file: "expert_load.svg",
                                        caption: "Top-k selections of each expert divided by the layer's mean; a bar at 2 is an expert doing twice its share."))
        }
        for layer in heatmapLayers ?? Array(0..<recorder.dims.layers) where (0..<recorder.dims.layers).contains(layer) {
            let views: [(String, CountTable, Bool)] = [
                ("class", recorder.classExpertTable(layer: layer), false),
                ("position", recorder.positionExpertTable(layer: layer), true),
                ("step", recorder.stepExpertTable(layer: layer), true),
            ]
            let grid = Int(Double(recorder.dims.positions).squareRoot().rounded())
            if grid * grid == recorder.dims.positions {
                let id = "token_grid_layer\(layer)"
                try store.writeSVG("\(id).svg", tokenGrid(recorder.positionExpertTable(layer: layer), grid: grid).svg())
                figures.append(ResultFigure(id: id, title: "Layer \(layer): expert share on the \(grid)×\(grid) token grid", file: "\(id).svg",
                                            caption: "Position as the image's patch grid; one colour scale per layer; raw counts in heatmap_position_layer\(layer).csv"))
            }
            for (kind, raw, scaled) in views where raw.rows > 0 {
                let id = "heatmap_\(kind)_layer\(layer)"
                try store.writeFile("\(id).csv", Data(raw.csv().utf8))
                if kind == "position" && grid * grid == recorder.dims.positions { continue }  // drawn as the token grid above
                try store.writeSVG("\(id).svg", heatmap(raw, kind: kind, scaled: scaled).svg())
                figures.append(ResultFigure(
                    id: id, title: "Layer \(layer): \(kind) × expert", file: "\(id).svg",
                    caption: (scaled ? "min–max scaled per layer" : "raw selection counts") + "; raw counts in \(id).csv"))
            }
        }

        struct Payload: Encodable {
            var dims: RoutingDimensions
            var recordedTokens: UInt64
            var rejectedTokens: UInt64
            var rejectedSlots: UInt64
            var report: LoadBalanceReport
            var whatIf: PlacementWhatIf?
            var dependences: [RoutingDependence]
            var verdicts: [RoutingVerdict]
        }
        let data = try JSONValue.from(Payload(dims: recorder.dims, recordedTokens: recorder.recordedTokens,
                                              rejectedTokens: recorder.rejectedTokens, rejectedSlots: recorder.rejectedSlots,
                                              report: report, whatIf: whatIf, dependences: dependences, verdicts: verdicts))
        return ResultPart(id: "load_balance", title: title, summary: summary, tables: tables, figures: figures, data: data)
    }
}

// The part's figures from its counts (FigureRedraw draws them again from the stored data).
extension LoadBalancePart {
    /// Per-expert load ÷ layer mean, one group per layer, with the balanced level marked.
    static func expertLoadChart(_ loads: [[Double]]) -> BarChart {
        let experts = loads.first?.count ?? 0
        let colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
        var chart = BarChart(
            title: "Load of each expert per layer, relative to the layer's mean", categories: loads.indices.map { "layer \($0)" },
            categoryLabel: "MoE layer", yLabel: "selections ÷ layer mean (1 = balanced)",
            series: (0..<experts).map { e in
                BarChart.Series(name: "expert \(e)", color: colours[e % colours.count], values: loads.map { row in
                    let mean = row.reduce(0, +) / Double(experts)
                    return mean > 0 ? row[e] / mean : nil
                })
            })
        chart.reference = (1, "balanced (= layer mean)")
        return chart
    }

    static func tokenGrid(_ positions: CountTable, grid: Int) -> TokenGridFigure {
        TokenGridFigure(title: "Layer \(positions.layer): each expert's share of the selections at each token position", grid: grid, table: positions)
    }

    /// A class / position / step × expert heatmap, min–max scaled when `scaled`.
    static func heatmap(_ raw: CountTable, kind: String, scaled: Bool) -> Heatmap {
        var map = Heatmap(scaled ? raw.minMaxScaled() : raw, title: "Layer \(raw.layer): \(kind) × expert")
        // Step rows are the sampler's calls in order: row 0 is the first call, on pure noise.
        if kind == "step" { map.yLabel = "sampling step (0 = first, pure noise)" }
        return map
    }
}
