// `moebench suite`: runs a profile's parts in order (cost, load balance, curves), writing each part into the
// results directory as soon as it finishes (results.json is rewritten atomically), so an interrupted suite keeps
// what it finished. Ends by rendering index.html.
import DiT
import Foundation
import Wire
import Metrics
import Training
import Tensor

public final class SuiteRunner {
    public let profile: Profile
    public let progress: Progress
    public let resultsRoot: URL
    /// Appended to the command line of every worker the suite starts (e.g. `--gemm`, `--precision`).
    public var workerArguments: [String] = []
    public private(set) var store: ResultsStore?

    /// Arithmetic of the models' large GEMMs (set `GEMMBackend.current` before `run`).
    public var precision: ComputePrecision = .fp32
    /// Continue the interrupted or failed run in this directory (same profile): finished parts are kept, the
    /// others rerun, and the curves part skips the cells already in its curves.jsonl.
    public var resumeDirectory: URL?
    /// SIGINT/SIGTERM mark the run "interrupted" and exit (see SuiteInterruption); off in tests.
    public var handleSignals = false
    /// Printed after an interruption: how to resume.
    public var resumeHint = ""
    /// The cost part's roofline when given (`--peak`, `--peak-from`); nil: measured once in this run.
    public var rooflineOverride: RooflineRecord?

    public init(profile: Profile, resultsRoot: URL, progress: Progress = Progress()) {
        self.profile = profile
        self.resultsRoot = resultsRoot
        self.progress = progress
    }

    /// Runs the suite; returns the results directory. A part that fails is recorded as failed (with what it
    /// measured) and the suite goes on; the suite's status is then "failed".
    @discardableResult
    public func run() throws -> URL {
        let machine = MachineInfo.collect(gitDirectory: FileManager.default.currentDirectoryPath)
        let store = try resumeDirectory.map { try ResultsStore.resume(directory: $0, profile: profile) }
            ?? ResultsStore.create(root: resultsRoot, profile: profile, machine: machine)
        self.store = store
        progress.say("results → \(store.directory.path)\(resumeDirectory == nil ? "" : " (resumed)")")
        if handleSignals {
            SuiteInterruption.install(store: store, progress: progress, hint: resumeHint + store.directory.path)
        }
        defer { if handleSignals { SuiteInterruption.uninstall() } }
        BLASThreads.set(1)
        Parallel.threads = profile.run.threads ?? ProcessInfo.processInfo.activeProcessorCount
        var failed = false
        func part(_ id: String, _ title: String, _ body: () throws -> ResultPart) throws {
            if store.finishedPart(id) != nil {
                progress.say("\(id): finished in the earlier run, kept")
                return
            }
            let started = ResultsStore.iso8601(Date())
            let firstPart = store.document.parts.isEmpty, loadBefore = LoadSnapshot.take()
            func load() -> PartLoad? {
                guard let b = loadBefore, let a = LoadSnapshot.take() else { return nil }
                return PartLoad(before: b, after: a, cores: ProcessInfo.processInfo.activeProcessorCount, firstPart: firstPart)
            }
            do {
                var p = try body()
                p.startedAt = started
                p.finishedAt = ResultsStore.iso8601(Date())
                p.machineLoad = load()
                p.summary.insert(contentsOf: p.machineLoad?.warnings ?? [], at: 0)
                try store.add(p)
            } catch {
                failed = true
                progress.say("\(id) failed: \(error)")
                try store.add(ResultPart(id: id, title: title, status: .failed, error: "\(error)", startedAt: started,
                                         finishedAt: ResultsStore.iso8601(Date()), machineLoad: load()))
            }
            try ReportRenderer.write(directory: store.directory)
        }
        if let cost = profile.cost { try part("cost", "Inference cost: dense versus MoE") { try runCost(cost, store: store) } }
        if let lb = profile.loadBalance { try part("load_balance", "Expert load balance") { try runLoadBalance(lb, store: store) } }
        if let curves = profile.curves { try part("curves", "NFE versus Fréchet distance") { try runCurves(curves, store: store) } }
        try store.finish(status: failed ? .failed : .complete)
        try ReportRenderer.write(directory: store.directory)
        progress.say("done: \(store.directory.appendingPathComponent("index.html").path)")
        return store.directory
    }

    /// Starts (or, with `launch = "external"`, connects to) the workers of `[cluster]` for one model.
    func openCluster(_ settings: ClusterSettings, _ config: DiTConfig, _ source: WeightSource) throws -> LocalClusterSession {
        try LocalClusterSession(settings: settings, config: config, source: source, progress: progress,
                                precision: precision, workerArguments: workerArguments)
    }

    // MARK: Models

    func resolve(_ id: String) throws -> (DiTConfig, WeightSource) {
        guard let spec = profile.model(id) else { throw SuiteError.unknownModel(id) }
        let config: DiTConfig
        if let name = spec.builtin {
            guard let c = BuiltinModels.config(name, imageSize: spec.imageSize ?? 256, depth: spec.depth) else { throw SuiteError.unknownModel(name) }
            config = c
        } else if let path = spec.config {
            config = try DiTConfig.load(jsonFile: path)
        } else {
            throw SuiteError.unknownModel(id)
        }
        let source: WeightSource
        switch spec.weights {
        case nil: source = .random(seed: profile.run.seeds.first ?? 0)
        case "learned"?:
            // The model moebench trained and ships under this built-in name (Training/Resources/models).
            guard let name = spec.builtin, let path = LearnedModels.weightsPath(name) else {
                throw SuiteError.unknownModel("\(id): weights = \"learned\" needs a built-in name with shipped weights (\(LearnedModels.names.joined(separator: ", ")))")
            }
            source = .safetensors(path: path)
        case let path?: source = .safetensors(path: path)
        }
        return (config, source)
    }

    // MARK: Cost (CostPairing.swift)

    // MARK: Load balance

    func runLoadBalance(_ suite: LoadBalanceSuite, store: ResultsStore) throws -> ResultPart {
        let (config, source) = try resolve(suite.model)
        guard config.isMoE else { throw SuiteError.notMoE(suite.model) }
        progress.say("load balance: \(config.name), \(suite.sampler.rawValue) \(suite.steps) steps, classes \(suite.classes)")
        let weights = try DiTWeights(config: config, source: source, precision: precision)
        var session: LocalClusterSession?
        defer { session?.shutdown() }
        let model: DiTModel
        var placement: ExpertPlacement?
        if suite.execution == .cluster {
            guard let settings = profile.cluster else { throw SuiteError.noCluster }
            session = try openCluster(settings, config, source)
            let codec = profile.codecs.first ?? ShardOptions.default
            model = try DiTModel(weights: weights, executor: try session!.executor(for: weights, codec: codec))
            placement = session!.placement
        } else {
            model = try DiTModel(weights: weights)
            placement = try hostsPlacement(experts: config.numExperts)
        }
        let recorder = try LoadBalanceRun(suite: suite, progress: progress).run(model: model, seed: profile.run.seeds.first ?? 0)
        var part = try LoadBalancePart.make(recorder: recorder, placement: placement, extraSlotsPerWorker: suite.extraSlotsPerWorker,
                                            heatmapLayers: suite.heatmapLayers, store: store)
        part.summary.insert("\(config.name) (\(source.description)), \(suite.sampler.rawValue) sampling, \(suite.steps) steps, CFG \(suite.cfgScale), classes \(suite.classes) × \(suite.samplesPerClass).", at: 0)
        if !suite.ablations.isEmpty {
            var reports = [(suite.model, LoadBalanceReport(loads: recorder.expertLoadMatrix(), placement: nil))]
            for id in suite.ablations {
                let (c, s) = try resolve(id)
                progress.say("load balance: ablation \(id) (\(c.name))")
                let r = try LoadBalanceRun(suite: suite, progress: progress).run(model: try DiTModel(config: c, source: s), seed: profile.run.seeds.first ?? 0)
                reports.append((id, LoadBalanceReport(loads: r.expertLoadMatrix(), placement: nil)))
            }
            var table = LoadBalancePart.ablationTable(reports)
            table = try store.writeCSV(table)
            part.tables.insert(table, at: 0)
            part.summary.append("Ablations side by side (same sampling run): " + reports.map {
                String(format: "%@ balancedness %.3f, mean MaxVio %.3f", $0.0, $0.1.overall.expertBalancedness, $0.1.overall.meanMaxVio)
            }.joined(separator: "; ") + ".")
        }
        return part
    }

    /// The placement of the profile's hosts file, for per-worker loads of an in-process run (nil without one).
    func hostsPlacement(experts: Int) throws -> ExpertPlacement? {
        guard let hosts = profile.cluster?.hosts else { return nil }
        return try HostsPlacement.load(path: hosts, experts: experts)
    }

    // MARK: Curves

    func runCurves(_ sweep: CurvesSettings, store: ResultsStore) throws -> ResultPart {
        try CurvesPart.run(sweep, store: store, progress: progress) { id, execution in
            let (config, source) = try self.resolve(id)
            self.progress.say("curves: loading \(config.name) (\(id), \(source.description))")
            let weights = try DiTWeights(config: config, source: source)
            guard execution == .cluster, config.isMoE else { return (try DiTModel(weights: weights), {}) }
            guard let settings = self.profile.cluster else { throw SuiteError.noCluster }
            let session = try self.openCluster(settings, config, source)
            let codec = self.profile.codecs.first ?? ShardOptions.default
            return (try DiTModel(weights: weights, executor: try session.executor(for: weights, codec: codec)), { session.shutdown() })
        }
    }
}

public enum SuiteError: Error, CustomStringConvertible {
    case unknownModel(String), noCluster, notMoE(String)
    public var description: String {
        switch self {
        case let .unknownModel(id): return "model '\(id)' cannot be resolved (built-in name or config file)"
        case .noCluster: return "the profile asks for cluster execution but has no [cluster] table (hosts = \"…\")"
        case let .notMoE(id): return "model '\(id)' is dense; load balance needs a MoE model"
        }
    }
}

extension WeightSource {
    public var description: String {
        switch self {
        case let .safetensors(path): return "weights \(path)"
        case let .random(seed): return "random weights, seed \(seed)"
        }
    }
}
