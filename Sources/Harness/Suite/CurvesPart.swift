// The "curves" part: the sampler issue's NFE–FD sweep (Harness/Curves) run inside a suite, its rows kept in
// `<results>/curves/curves.jsonl` (so the sweep resumes like `moebench curves`), summarised as a table and the
// Figure-3-style SVG in the same report.
import Diffusion
import Foundation
import Metrics

enum CurvesPart {
    static func run(_ settings: CurvesSettings, store: ResultsStore, progress: Progress) throws -> ResultPart {
        guard settings.score == "testbed" else { throw SuiteError.unknownModel("curves.score = \(settings.score)") }
        var config = CurveSweepConfig()
        config.integrators = settings.integrators
        config.budgets = settings.nfe
        config.dlgModes = settings.dlg == .on ? [true] : settings.dlg == .off ? [false] : [false, true]
        config.samples = settings.samples
        config.seeds = settings.seeds.map { Int($0) }
        // Chains run in parallel and each emits samples/chains draws; DLG's one-off warm-up (~57 NFE per chain) is
        // amortised over those draws, so keep ≥ 20 draws per chain: the largest divisor of `samples` that is at most
        // samples/20 (and the runner's default chain count).
        let maxChains = max(1, min(config.chains, settings.samples / 20))
        config.chains = (1...maxChains).last { settings.samples % $0 == 0 } ?? 1
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
            id: "curves_points", title: "Fréchet distance by integrator, NFE budget and mode (mean over seeds, 95% interval)",
            columns: [.init("integrator"), .init("mode"), .init("budget", unit: "NFE"), .init("NFE counted", unit: "mean"),
                      .init("step"), .init("FD", unit: "mean"), .init("FD 95% low"), .init("FD 95% high"), .init("samples")],
            rows: summary.points.map { p in
                [.string(p.integrator), .string(p.dlg ? "DLG" : "vanilla"), n(Double(p.budget)), n(p.nfe), .string(p.step),
                 n(p.fd.mean), n(p.fd.mean - p.fd.halfWidth), n(p.fd.mean + p.fd.halfWidth), n(Double(p.samples))]
            },
            note: summary.floor.map { String(format: "Floor (FD of %d exact draws, no sampler can beat it at this sample count): %.4g.", summary.samples, $0.mean) })
        var lines = ["Score source: \(source.label); \(settings.samples) samples per cell, seeds \(settings.seeds). FD is biased at small sample counts: compare against the floor."]
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
                          figures: [ResultFigure(id: "curves", title: "NFE vs FD per integrator, vanilla and DLG, with the floor",
                                                 file: "curves.svg", caption: "One panel per integrator; y is FD to the testbed's exact moments.")],
                          data: try JSONValue.from(summary))
    }
}
