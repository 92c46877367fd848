import Foundation
import Diffusion
import Metrics
import Tensor

// The NFE–FD sweep: integrators × budgets × {vanilla, DLG} × seeds on one score source, plus one floor row per
// seed. Cells already in the store are skipped (resume). Progress goes to the `progress` callback (stderr in the CLI).

public struct CurveSweepConfig: Sendable {
    public var integrators: [IntegratorKind] = IntegratorKind.allCases
    public var budgets: [Int] = [10, 20, 50, 100, 200]
    /// Which modes to run: [false] vanilla, [true] DLG, [false, true] both.
    public var dlgModes: [Bool] = [false, true]
    /// Samples per cell (a multiple of `chains`).
    public var samples: Int = 2000
    public var seeds: [Int] = [0, 1, 2]
    /// Batch size of vanilla runs and number of DLG chains (RK45's NFE is batch-coupled).
    public var chains: Int = 200
    public var dlg = DLGBudgetDefaults()
    /// Bootstrap resamples of each cell's FD interval (over its samples; FrechetBootstrap) when the source does not
    /// supply one.
    public var fdBootstrap = 200

    public init() {}

    public func validate() throws {
        func bad(_ s: String) -> Error { CurveSweepError.invalidConfig(s) }
        if integrators.isEmpty { throw bad("--integrators: no integrator selected") }
        if budgets.isEmpty || budgets.contains(where: { $0 < 4 }) { throw bad("--nfe: budgets must be ≥ 4, got \(budgets)") }
        if seeds.isEmpty { throw bad("--seeds: need at least one seed") }
        if chains < 1 { throw bad("--chains must be ≥ 1") }
        if samples < 2 || samples % chains != 0 {
            throw bad("--samples (\(samples)) must be ≥ 2 and a multiple of --chains (\(chains))")
        }
        if dlg.epsilon <= 0 { throw bad("--dlg-eps must be positive") }
        if !(dlg.skipFraction > 0 && dlg.skipFraction < 1) { throw bad("--dlg-skip-fraction must be in (0, 1)") }
    }
}

public enum CurveSweepError: Error, CustomStringConvertible {
    case invalidConfig(String)
    case noEstimator(source: String)
    public var description: String {
        switch self {
        case .invalidConfig(let s): return s
        case .noEstimator(let s): return "score source \(s) has no noise-level estimator, so DLG cannot run (use --dlg off)"
        }
    }
}

public struct CurveCell: Sendable, Equatable {
    public var integrator: IntegratorKind
    public var dlg: Bool
    public var budget: Int
    public var seed: Int
}

public final class CurveSweep {
    public let source: CurveScoreSource
    public let config: CurveSweepConfig
    public let store: CurveStore
    private let progress: (String) -> Void
    /// Called with each newly finished cell's samples (`[samples, dimension]`, source units) before its row is stored.
    public var onCellSamples: ((CurveRow, [Float]) throws -> Void)?

    public init(source: CurveScoreSource, config: CurveSweepConfig, store: CurveStore,
                progress: @escaping (String) -> Void = { _ in }) throws {
        try config.validate()
        if config.dlgModes.contains(true) && source.levelEstimator == nil { throw CurveSweepError.noEstimator(source: source.label) }
        self.source = source
        self.config = config
        self.store = store
        self.progress = progress
    }

    /// All cells in run order: seed-major, so a partial sweep already has complete curves for the first seeds.
    public var cells: [CurveCell] {
        var out = [CurveCell]()
        for seed in config.seeds {
            for kind in config.integrators {
                for dlg in config.dlgModes {
                    for b in config.budgets { out.append(CurveCell(integrator: kind, dlg: dlg, budget: b, seed: seed)) }
                }
            }
        }
        return out
    }

    /// Runs every missing floor row and cell, appending each as it finishes. Returns the rows of this sweep
    /// (existing and new) in cell order.
    @discardableResult
    public func run() throws -> [CurveRow] {
        let reference = try source.referenceMoments()
        let all = cells
        var done = 0, skipped = 0
        let t0 = Date()
        for seed in config.seeds where !source.measuresFD {
            let row = floorRow(seed: seed)
            if !store.contains(row.key), let draws = source.exactSamples(count: config.samples, seed: UInt64(seed)) {
                let start = Date()
                var r = row
                r.fd = try FrechetDistance.samples(draws, dimension: source.dimension, against: reference)
                try source.measure(draws, into: &r)
                try addInterval(draws, reference: reference, seed: UInt64(seed) ^ 0xF100_F100, into: &r)
                r.seconds = Date().timeIntervalSince(start)
                try store.append(r)
                progress("floor seed=\(seed): FD \(LinePlot.label(r.fd)) from \(config.samples) exact draws")
            }
        }
        for cell in all {
            let key = template(cell, plan: plan(cell)).key
            if store.contains(key) { skipped += 1; continue }
            let start = Date()
            let (row, samples) = try runCell(cell, reference: reference)
            try onCellSamples?(row, samples)
            try store.append(row)
            done += 1
            let elapsed = Date().timeIntervalSince(t0)
            let remaining = all.count - skipped - done
            let eta = Double(remaining) * elapsed / Double(done)
            progress(String(format: "[%d/%d] %@ %@ budget %d seed %d: NFE %.1f (%@), FD %@ in %.1f s; ETA %.0f s",
                            done + skipped, all.count, cell.integrator.rawValue, cell.dlg ? "DLG" : "vanilla",
                            cell.budget, cell.seed, row.nfe, row.step, LinePlot.label(row.fd),
                            Date().timeIntervalSince(start), eta))
        }
        if skipped > 0 { progress("resumed: \(skipped) cell(s) were already in \(store.jsonlPath)") }
        return rows()
    }

    /// The rows of this sweep's cells and floors currently in the store.
    public func rows() -> [CurveRow] {
        var want = Set(cells.map { template($0, plan: plan($0)).key })
        for s in config.seeds where !source.measuresFD { want.insert(floorRow(seed: s).key) }
        return store.rows.filter { want.contains($0.key) }
    }

    func plan(_ cell: CurveCell) -> CellPlan {
        cell.dlg ? CurveBudgets.dlg(cell.integrator, budget: cell.budget, defaults: config.dlg)
                 : CurveBudgets.vanilla(cell.integrator, budget: cell.budget)
    }

    private func template(_ cell: CurveCell, plan: CellPlan) -> CurveRow {
        CurveRow(source: source.label, integrator: cell.integrator.rawValue, dlg: cell.dlg, budget: cell.budget, nfe: 0,
                 step: plan.integrator.stepParameter, nSkip: plan.nSkip, epsilon: cell.dlg ? config.dlg.epsilon : nil,
                 skipFraction: cell.dlg ? config.dlg.skipFraction : nil, fd: 0, samples: config.samples,
                 seed: cell.seed, chains: config.chains, meanStartSigma: nil, warmupNFE: nil, seconds: 0)
    }

    private func floorRow(seed: Int) -> CurveRow {
        CurveRow(source: source.label, integrator: "floor", dlg: false, budget: 0, nfe: 0, step: "exact draws",
                 nSkip: nil, epsilon: nil, skipFraction: nil, fd: 0, samples: config.samples, seed: seed,
                 chains: config.chains, meanStartSigma: nil, warmupNFE: nil, seconds: 0)
    }

    /// The row's FD interval by bootstrap over `samples`, unless the source already set one (seeded: resample
    /// indices from SplitMix64(seed ^ "boot")).
    func addInterval(_ samples: [Float], reference: GaussianMoments, seed: UInt64, into row: inout CurveRow) throws {
        guard row.fdLower == nil || row.fdUpper == nil, config.fdBootstrap > 0 else { return }
        var rng = SplitMix64(seed: seed ^ 0x626F_6F74)
        let e = try FrechetBootstrap.estimate(samples, dimension: source.dimension, reference: reference,
                                              resamples: config.fdBootstrap, using: &rng)
        row.fdLower = e.lower
        row.fdUpper = e.upper
    }

    /// Noise seed of a cell: distinct per (seed, integrator, mode, budget), reproducible.
    static func noiseSeed(_ cell: CurveCell) -> UInt64 {
        let k = UInt64(IntegratorKind.allCases.firstIndex(of: cell.integrator)!)
        return UInt64(cell.seed) &* 1_000_003 &+ k &* 10_007 &+ UInt64(cell.budget) &* 31 &+ (cell.dlg ? 1 : 0)
    }

    func runCell(_ cell: CurveCell, reference: GaussianMoments) throws -> (CurveRow, [Float]) {
        let start = Date()
        let p = plan(cell)
        var row = template(cell, plan: p)
        let d = source.dimension, b = config.chains, blocks = config.samples / b
        let context = SamplerContext(denoiser: CountingDenoiser(source.denoiser), noise: SeededNormalNoise(seed: Self.noiseSeed(cell)))
        var samples = [Float](repeating: 0, count: config.samples * d)
        var nfeSum = 0
        if cell.dlg {
            guard let estimator = source.levelEstimator else { throw CurveSweepError.noEstimator(source: source.label) }
            let chains = DLGChains(chains: b, estimator: estimator, context: context)
            let settings = DLGSettings(epsilon: config.dlg.epsilon, nSkip: p.nSkip ?? 1)
            row.warmupNFE = chains.warmUp(settings)
            var sigmaSum = 0.0
            for blk in 0..<blocks {
                let r = try samples.withUnsafeMutableBufferPointer {
                    try chains.nextBlock(settings, integrator: p.integrator, finish: source.finish, into: $0.baseAddress! + blk * b * d)
                }
                nfeSum += r.nfe
                sigmaSum += r.meanStartSigma
            }
            row.meanStartSigma = sigmaSum / Double(blocks)
        } else {
            for blk in 0..<blocks {
                source.beginBlock(blk)
                let r = try samples.withUnsafeMutableBufferPointer {
                    try sampleVanilla(p.integrator, batch: b, sigmaMax: source.sigmaMax, finish: source.finish,
                                      context: context, into: $0.baseAddress! + blk * b * d)
                }
                nfeSum += r.nfe
            }
        }
        row.nfe = Double(nfeSum) / Double(blocks)
        if !source.measuresFD { row.fd = try FrechetDistance.samples(samples, dimension: d, against: reference) }
        try source.measure(samples, into: &row)
        if !source.measuresFD { try addInterval(samples, reference: reference, seed: Self.noiseSeed(cell), into: &row) }
        row.seconds = Date().timeIntervalSince(start)
        return (row, samples)
    }
}
