// The "curves" part: the sampler issue's NFE–FD sweep (Harness/Curves) run inside a suite, its rows kept in
// `<results>/curves/curves.jsonl` (so the sweep resumes like `moebench curves`), summarised as a table and the
// Figure-3-style SVG in the same report.
import DiT
import Diffusion
import Foundation
import Metrics
import Training

enum CurvesPart {
    /// A model of the profile, ready to sample (experts in-process or on the cluster), and what to call when done.
    typealias ModelProvider = (_ id: String, _ execution: ExecutionMode) throws -> (model: DiTModel, done: () -> Void)

    static func run(_ settings: CurvesSettings, store: ResultsStore, progress: Progress,
                    models: ModelProvider? = nil) throws -> ResultPart {
        let testbed = try runTestbed(settings, store: store, progress: progress)
        guard settings.score == "model", let models else { return testbed }
        return try runModels(settings, store: store, progress: progress, provider: models, testbed: testbed)
    }

    static func sweepConfig(_ settings: CurvesSettings, chains: Int) -> CurveSweepConfig {
        var config = CurveSweepConfig()
        config.integrators = settings.integrators
        config.budgets = settings.nfe
        config.dlgModes = settings.dlg == .on ? [true] : settings.dlg == .off ? [false] : [false, true]
        config.samples = settings.samples
        config.seeds = settings.seeds.map { Int($0) }
        config.chains = (1...max(1, min(chains, settings.samples))).last { settings.samples % $0 == 0 } ?? 1
        return config
    }

    /// The trained models' sweeps (one store per model under curves/<id>/, samples and PNG grids beside it), one
    /// comparison figure, and the testbed part's tables and figure kept as the exact-ground-truth panel.
    static func runModels(_ settings: CurvesSettings, store: ResultsStore, progress: Progress, provider: ModelProvider,
                          testbed: ResultPart) throws -> ResultPart {
        let config = sweepConfig(settings, chains: settings.chains)
        let (train, heldOut) = try DigitsDataset.bundled().split()
        func unit(_ d: DigitsDataset) -> [Float] { d.pixels.map { ($0 + 1) / 2 } }
        let (estimator, fid) = try ModelScoreSource.bundledInstruments()
        var summaries: [(name: String, summary: CurveSummary)] = []
        var lines: [String] = [], rowsOut: [[JSONValue]] = []
        let n = { (d: Double) in JSONValue.number(d) }
        for id in settings.models {
            let (model, done) = try provider(id, settings.execution)
            defer { done() }
            let source = ModelScoreSource(model: model, name: id, cfgScale: settings.cfgScale.map(Float.init), batch: config.chains,
                                          heldOut: unit(heldOut), train: unit(train), levelEstimator: estimator, fid: fid)
            let cfg = config
            let dir = store.directory.appendingPathComponent("curves/\(id)")
            let sweep = try CurveSweep(source: source, config: cfg, store: try CurveStore(directory: dir.path)) { progress.say("curves \(id): " + $0) }
            sweep.onCellSamples = { row, samples in try CellSamples.write(row: row, samples: samples, side: 8, directory: dir.path) }
            let rows = try sweep.run()
            let summary = CurveSummary(rows: rows)
            summaries.append((id, summary))
            for p in summary.points {
                let secs = rows.filter { $0.integrator == p.integrator && $0.dlg == p.dlg && $0.budget == p.budget }.map(\.seconds)
                let perK = secs.reduce(0, +) / Double(max(secs.count, 1)) / Double(settings.samples) * 1000
                rowsOut.append([.string(id), .string(p.integrator), .string(p.dlg ? "DLG" : "vanilla"), n(Double(p.budget)), n(p.nfe),
                                p.fidDigits.map { n($0.mean) } ?? .null, p.fidDigits?.lower.map(n) ?? .null, p.fidDigits?.upper.map(n) ?? .null,
                                n(p.fd.mean), p.fd.lower.map(n) ?? .null, p.fd.upper.map(n) ?? .null, n(perK)])
            }
            if let best = summary.points.min(by: { ($0.fidDigits?.mean ?? $0.fd.mean) < ($1.fidDigits?.mean ?? $1.fd.mean) }) {
                lines.append(String(format: "%@: best FID-digits %.3g (%@ %@, %.0f NFE; pixel FD %.3g); finite-sample reference (train real digits against held-out real digits, same sample count): FID-digits %.3g, pixel FD %.3g.",
                                    id, best.fidDigits?.mean ?? .nan, best.integrator, best.dlg ? "DLG" : "vanilla", best.nfe, best.fd.mean,
                                    summary.floorFIDDigits?.mean ?? .nan, summary.floor?.mean ?? .nan))
            }
        }
        let title = "NFE vs FD on the UCI digits (8×8, not ImageNet) — \(settings.models.joined(separator: " vs ")), \(settings.samples) samples"
        try store.writeSVG("curves_models.svg", CurveSummary.comparison(summaries, title: title).svg())
        var table = ResultTable(
            id: "curves_models", title: "Trained models: FD (pixels) by integrator, budget and mode, and compute per 1000 samples",
            columns: [.init("model"), .init("integrator"), .init("mode"), .init("budget", unit: "NFE"), .init("NFE counted"),
                      .init("FID-digits"), .init("FID-digits low", unit: "95% bootstrap"), .init("FID-digits high", unit: "95% bootstrap"),
                      .init("pixel FD", unit: "[0,1]² pixels"), .init("pixel FD low", unit: "95% bootstrap"),
                      .init("pixel FD high", unit: "95% bootstrap"), .init("seconds per 1000 samples")],
            rows: rowsOut,
            note: "FID-digits: Fréchet distance of a digit classifier's penultimate-layer features (98% held-out accuracy) between the samples and the 300 held-out digits — not Inception FID; intervals are a bootstrap over samples (percentile interval shifted by the bootstrap bias estimate, lower end ≥ 0; several seeds combine as in docs/results.md). FD at this sample count is biased upward: compare with the finite-sample reference — held-out real digits against the same number of train real digits — which is what real data scores at this n, not a bound (a sampler can land below it by chance). DLG rows exclude the chains' one-off warm-up. Seconds are wall time per cell on this machine (FD per second of compute).")
        table = try store.writeCSV(table)
        var part = testbed
        part.summary = lines + ["Exact-ground-truth panel (testbed):"] + testbed.summary
        part.tables = [table] + testbed.tables
        part.figures = [ResultFigure(id: "curves_models", title: "Trained DiT-MoE and its dense twin on one NFE–FD axis",
                                     file: "curves_models.svg", caption: "One panel per integrator; sample grids per cell in curves/<model>/samples/.")]
            + testbed.figures
        return part
    }

    static func runTestbed(_ settings: CurvesSettings, store: ResultsStore, progress: Progress) throws -> ResultPart {
        // Chains run in parallel and each emits samples/chains draws; DLG's one-off warm-up (~57 NFE per chain) is
        // amortised over those draws, so keep ≥ 20 draws per chain: the largest divisor of `samples` that is at most
        // samples/20 (and the runner's default chain count).
        let config = sweepConfig(settings, chains: max(1, min(CurveSweepConfig().chains, settings.samples / 20)))
        let t = settings.testbed
        let spec = LowRankMixtureSpec(dimension: t.dim, components: t.components, rank: t.rank, isotropicStd: t.isotropicStd, seed: t.seed)
        let source = TestbedScoreSource(spec: spec)
        let dir = store.directory.appendingPathComponent("curves")
        let curveStore = try CurveStore(directory: dir.path)
        let sweep = try CurveSweep(source: source, config: config, store: curveStore) { progress.say("curves: " + $0) }
        let rows = try sweep.run()
        let summary = CurveSummary(rows: rows)
        let svg = summary.figure(title: "NFE vs FD on \(spec.label) — \(settings.samples) samples, \(settings.seeds.count) seed(s)").svg()
        try store.writeSVG("curves.svg", svg)

        let n = { (d: Double) in JSONValue.number(d) }
        var table = ResultTable(
            id: "curves_points", title: "Fréchet distance by integrator, NFE budget and mode (mean over seeds, 95% bootstrap interval over samples)",
            columns: [.init("integrator"), .init("mode"), .init("budget", unit: "NFE"), .init("NFE counted", unit: "mean"),
                      .init("step"), .init("FD", unit: "mean"), .init("FD 95% low", unit: "bootstrap"), .init("FD 95% high", unit: "bootstrap"),
                      .init("samples")],
            rows: summary.points.map { p in
                [.string(p.integrator), .string(p.dlg ? "DLG" : "vanilla"), n(Double(p.budget)), n(p.nfe), .string(p.step),
                 n(p.fd.mean), p.fd.lower.map(n) ?? .null, p.fd.upper.map(n) ?? .null, n(Double(p.samples))]
            },
            note: "Intervals: bootstrap over each cell's samples (percentile interval shifted by the bootstrap bias estimate, lower end ≥ 0; seeds combined as in docs/results.md)."
                + (summary.floor.map { String(format: " Finite-sample reference (FD of %d exact draws against the exact moments, the same sample count as every cell): %.4g — what a perfect sampler scores on average at this n, not a bound: a cell can land below it by chance.", summary.samples, $0.mean) } ?? ""))
        var lines = ["Score source: \(source.label); \(settings.samples) samples per cell, seeds \(settings.seeds). FD is biased upward at small sample counts: compare against the finite-sample reference (exact draws, same sample count)."]
        // DLG's NFE follow the paper's accounting (per block: n_skip + integrator + 1) and leave out each chain's
        // one-off warm-up; say what that warm-up costs per emitted sample at this run's chain length.
        let dlgRows = rows.filter { $0.dlg && $0.warmupNFE != nil }
        if let first = dlgRows.first, let warm = first.warmupNFE {
            let blocks = Double(first.samples) / Double(first.chains)
            let perSample = dlgRows.map { Double($0.warmupNFE!) * Double($0.chains) / Double($0.samples) }.reduce(0, +) / Double(dlgRows.count)
            lines.append(String(format: "DLG NFE exclude the chains' one-off warm-up (%d NFE per chain; %.0f samples per chain here, so %.1f NFE per sample if amortised — the paper's long chains make it ~0.2).", warm, blocks, perSample))
            table.note = (table.note.map { $0 + " " } ?? "") + String(format: "DLG rows exclude the warm-up: add %.1f NFE per sample to compare at equal total cost.", perSample)
        }
        for kind in settings.integrators.map(\.rawValue) {
            let best = { (dlg: Bool) in summary.points.filter { $0.integrator == kind && $0.dlg == dlg }.min { $0.fd.mean < $1.fd.mean } }
            if let v = best(false), let d = best(true) {
                lines.append(String(format: "%@: best vanilla FD %.4g at %.0f NFE; best DLG FD %.4g at %.0f NFE.", kind, v.fd.mean, v.nfe, d.fd.mean, d.nfe))
            }
        }
        table = try store.writeCSV(table)
        return ResultPart(id: "curves", title: "NFE versus Fréchet distance", summary: lines, tables: [table],
                          figures: [ResultFigure(id: "curves", title: "NFE vs FD per integrator, vanilla and DLG, with the finite-sample reference",
                                                 file: "curves.svg", caption: "One panel per integrator; y is FD to the testbed's exact moments.")],
                          data: try JSONValue.from(summary))
    }
}
