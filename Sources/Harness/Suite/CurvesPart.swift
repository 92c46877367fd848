// The "curves" part: the NFE–FD sampler sweep (Harness/Curves) run inside a suite, its rows kept in
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

    /// The trained models' sweeps (one store per model under curves/<id>/, samples and PNG grids beside it), one
    /// comparison figure, and the testbed part's tables and figure kept as the exact-ground-truth panel.
    static func runModels(_ settings: CurvesSettings, store: ResultsStore, progress: Progress, provider: ModelProvider,
                          testbed: ResultPart) throws -> ResultPart {
        let config = settings.sweepConfig(chains: settings.chains)
        let (train, heldOut) = try DigitsDataset.bundled().split()
        func unit(_ d: DigitsDataset) -> [Float] { d.pixels.map { ($0 + 1) / 2 } }
        let (estimator, fid) = try ModelScoreSource.bundledInstruments()
        var summaries: [(name: String, summary: CurveSummary)] = []
        var lines: [String] = [], rowsOut: [[JSONValue]] = []
        var sampleFigures: [ResultFigure] = []
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
            let grids = try sampleGrids(rows: rows, directory: dir, model: id, reference: unit(heldOut),
                                        floor: summary.floorFIDDigits?.mean)
            try store.writeSVG("samples_\(id).svg", grids.svg())
            sampleFigures.append(ResultFigure(id: "samples_\(id)", title: "What the cells look like: \(id)", file: "samples_\(id).svg",
                                              caption: "The first \(grids.perCell) samples of each cell (seed \(rows.first?.seed ?? 0)), under each its FID-digits; top row: held-out real digits. Full grids and safetensors in curves/\(id)/samples/."))
            /// Wall seconds per 1000 samples of a point's cells (mean over seeds).
            func secondsPerThousand(_ p: CurvePoint) -> Double {
                let secs = rows.filter { $0.integrator == p.integrator && $0.dlg == p.dlg && $0.budget == p.budget }.map(\.seconds)
                return secs.reduce(0, +) / Double(max(secs.count, 1)) / Double(settings.samples) * 1000
            }
            for p in summary.points {
                let perK = secondsPerThousand(p)
                rowsOut.append([.string(id), .string(p.integrator), .string(p.dlg ? "DLG" : "vanilla"), n(Double(p.budget)), n(p.nfe),
                                p.fidDigits.map { n($0.mean) } ?? .null, p.fidDigits?.lower.map(n) ?? .null, p.fidDigits?.upper.map(n) ?? .null,
                                n(p.fd.mean), p.fd.lower.map(n) ?? .null, p.fd.upper.map(n) ?? .null, n(perK)])
            }
            if let best = summary.points.min(by: { ($0.fidDigits?.mean ?? $0.fd.mean) < ($1.fidDigits?.mean ?? $1.fd.mean) }) {
                lines.append(String(format: "%@: best FID-digits %.3g (%@ %@, %.0f NFE, %.1f s of compute per 1000 samples; pixel FD %.3g); finite-sample reference (train real digits against held-out real digits, same sample count): FID-digits %.3g, pixel FD %.3g.",
                                    id, best.fidDigits?.mean ?? .nan, best.integrator, best.dlg ? "DLG" : "vanilla", best.nfe,
                                    secondsPerThousand(best), best.fd.mean,
                                    summary.floorFIDDigits?.mean ?? .nan, summary.floor?.mean ?? .nan))
            }
        }
        try store.writeSVG("curves_models.svg", CurveSummary.comparison(summaries, title: modelsTitle(settings)).svg())
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
        let recovery = try sigmaRecoveryTable(store: store, lines: &lines)
        part.summary = lines + ["Exact-ground-truth panel (testbed):"] + testbed.summary
        part.tables = [table, recovery] + testbed.tables
        part.figures = [ResultFigure(id: "curves_models", title: "Trained DiT-MoE and its dense twin on one NFE–FD axis",
                                     file: "curves_models.svg", caption: "One panel per integrator; sample grids per cell below and in curves/<model>/samples/.")]
            + sampleFigures + testbed.figures
        return part
    }

    /// Figure titles (FigureRedraw draws the figures again from the stored rows with the same titles).
    static func modelsTitle(_ settings: CurvesSettings) -> String {
        "NFE vs FD on the UCI digits (8×8, not ImageNet) — \(settings.models.joined(separator: " vs ")), \(settings.samples) samples"
    }

    static func testbedTitle(_ settings: CurvesSettings) -> String {
        "NFE vs FD on \(settings.testbedSpec.label) — \(settings.samples) samples, \(settings.seeds.count) seed(s)"
    }

    /// DLG's Gibbs σ-step on the models uses the shipped noise-level classifier; the testbed's uses the exact
    /// σ-likelihood. Its σ recovery, so a reader can tell how much of DLG's gain on the models rests on it.
    static func sigmaRecoveryTable(store: ResultsStore, lines: inout [String]) throws -> ResultTable {
        let record = try NoiseLevelClassifier.bundledSummary()
        let reports = [record.sigmaRecoveryHeldOut, record.sigmaRecoveryPureNoise]
        lines.append(String(format: "DLG's σ-step on the models uses a trained noise-level classifier (%d levels): median |log σ̂ − log σ| %.3f on noised held-out digits, %.3f on pure noise; the testbed panel's DLG uses the exact σ-likelihood.",
                            record.levels.count, reports[0].median, reports[1].median))
        let n = { (d: Double) in JSONValue.number(d) }
        let table = ResultTable(
            id: "curves_sigma_recovery", title: "Noise-level classifier: σ recovery, |log σ̂ − log σ| per σ band",
            columns: [.init("input"), .init("σ from", unit: "[−1,1] pixels"), .init("σ to"), .init("n"), .init("median"), .init("mean"), .init("p90")],
            rows: reports.flatMap { r in r.bands.map { b in
                [.string(r.source), n(b.lower), n(b.upper), n(Double(b.count)), n(b.median), n(b.mean), n(b.p90)] } },
            note: "Measured when the classifier was trained (moebench train --noise-classifier), \(reports[0].drawsPerLevel) draws per level; ln-σ error 0.1 is a 10% error in σ.")
        return try store.writeCSV(table)
    }

    /// The first seed's cells of one model, read back from their safetensors (so a resumed sweep draws the same
    /// figure), next to the held-out digits.
    static func sampleGrids(rows: [CurveRow], directory: URL, model: String, reference: [Float], floor: Double?) throws -> SampleGridFigure {
        let seed = rows.filter { $0.integrator != "floor" }.map(\.seed).min() ?? 0
        var cells: [SampleGridFigure.Cell] = []
        for row in rows where row.integrator != "floor" && row.seed == seed {
            let path = directory.appendingPathComponent("samples/\(CellSamples.name(row)).safetensors").path
            guard FileManager.default.fileExists(atPath: path) else { continue }
            let images = try SafetensorsFile(path: path).floats("samples")
            // The counted NFE beside the value: adaptive RK45 spends more than its budget (33 at budget 10).
            let label = (row.fidDigits.map { String(format: "FID-digits %.3g", $0) } ?? String(format: "pixel FD %.3g", row.fd))
                + String(format: " · %.3g NFE", row.nfe)
            cells.append(.init(integrator: row.integrator, budget: row.budget, dlg: row.dlg, images: images, label: label))
        }
        return SampleGridFigure(title: "\(model): generated digits per integrator, NFE budget and mode", side: 8,
                                reference: (reference, floor.map { String(format: "held-out digits (train digits vs these at this n: FID-digits %.3g)", $0) } ?? "held-out digits"),
                                cells: cells)
    }

    static func runTestbed(_ settings: CurvesSettings, store: ResultsStore, progress: Progress) throws -> ResultPart {
        // Chains run in parallel and each emits samples/chains draws; DLG's one-off warm-up (~57 NFE per chain) is
        // amortised over those draws, so keep ≥ 20 draws per chain: the largest divisor of `samples` that is at most
        // samples/20 (and the runner's default chain count).
        let config = settings.sweepConfig(chains: max(1, min(settings.chains, settings.samples / 20)))
        let spec = settings.testbedSpec
        let source = TestbedScoreSource(spec: spec, sigmaMax: settings.testbed.sigmaMax ?? 50)
        let dir = store.directory.appendingPathComponent("curves")
        let curveStore = try CurveStore(directory: dir.path)
        let sweep = try CurveSweep(source: source, config: config, store: curveStore) { progress.say("curves: " + $0) }
        let rows = try sweep.run()
        let summary = CurveSummary(rows: rows)
        let svg = summary.figure(title: testbedTitle(settings)).svg()
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
