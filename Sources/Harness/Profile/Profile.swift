// The benchmark profile: what a suite runs (schema documented in profiles/README.md). All types are Codable so
// the parsed profile is stored verbatim in results.json.
import Foundation
import Wire
import Diffusion
import Metrics

public struct Profile: Codable, Equatable, Sendable {
    /// Profile name (default: the file name without extension); used in the results directory name.
    public var name: String
    public var description: String
    /// File the profile was read from ("<embedded default>" for the built-in default).
    public var source: String
    public var run: RunSettings
    public var models: [ModelSpec]
    public var cost: CostSuite?
    public var cluster: ClusterSettings?
    /// Codec variants for cluster transfers (the first is the default); empty means the Wire defaults.
    public var codecs: [ShardOptions]
    public var loadBalance: LoadBalanceSuite?
    public var curves: CurvesSettings?

    public func model(_ id: String) -> ModelSpec? { models.first { $0.id == id } }

    /// Every seed the suite uses: run seeds, then curve seeds not already listed.
    public var allSeeds: [UInt64] {
        var out = run.seeds
        for s in curves?.seeds ?? [] where !out.contains(s) { out.append(s) }
        return out
    }
}

public struct RunSettings: Codable, Equatable, Sendable {
    /// Master seeds: model initialisation (without weights), noise and class draws, Poisson arrivals derive from them.
    public var seeds: [UInt64]
    /// Untimed iterations before measuring each cell.
    public var warmupIterations: Int
    /// A cell measures until it has at least `minIterations` AND at least `minDurationSeconds` of timed work…
    public var minIterations: Int
    public var minDurationSeconds: Double
    /// …but stops at `maxDurationSeconds` (if set) even when `minIterations` is not reached; the cell records it.
    public var maxDurationSeconds: Double?
    /// Engine worker threads (nil: every core). BLAS itself always runs single-threaded inside each worker.
    public var threads: Int?
}

public struct ModelSpec: Codable, Equatable, Sendable {
    /// Name the rest of the profile refers to.
    public var id: String
    /// A built-in name (see `BuiltinModels`), or nil when `config` is given.
    public var builtin: String?
    /// Path of a JSON model config (exclusive with `builtin`).
    public var config: String?
    /// Path of a safetensors weights file; nil: random weights from the run seed.
    public var weights: String?
    /// Image size in pixels (latent = size / 8); nil: 256.
    public var imageSize: Int?
    /// Override of the number of blocks (built-ins only), for small runs.
    public var depth: Int?

    /// Shape of a built-in model with the overrides applied (nil for config-file models).
    public var builtinShape: ModelShape? {
        builtin.flatMap { BuiltinModels.shape($0, imageSize: imageSize ?? 256, depth: depth) }
    }
}

public enum Scenario: String, Codable, CaseIterable, Sendable {
    /// Next query only after the previous one finished (LoadGen SingleStream); metric p90 latency.
    case singleStream = "single_stream"
    /// All queries issued at once; metric throughput.
    case offline
    /// Poisson arrivals at a target rate; metric p99 latency (LoadGen Server).
    case server
}

public enum ExecutionMode: String, Codable, CaseIterable, Sendable {
    case inProcess = "in_process"
    case cluster
}

public struct CostSuite: Codable, Equatable, Sendable {
    /// Model ids measured (MoE or dense).
    public var models: [String]
    /// Dense baseline ids measured in the same run and shown beside every model.
    public var baselines: [String]
    public var batchSizes: [Int]
    public var scenarios: [Scenario]
    public var execution: [ExecutionMode]
    /// Classifier-free guidance: each query runs 2 × batch images (conditional + null class).
    public var cfg: Bool
    /// Offline: number of queries issued at once.
    public var offlineQueries: Int
    /// Server: Poisson arrival rate (queries/s), run length, optional p99 bound for VALID/INVALID.
    public var serverTargetQPS: Double?
    public var serverDurationSeconds: Double?
    public var serverTargetLatencyMs: Double?
}

public struct ClusterSettings: Codable, Equatable, Sendable {
    /// Hosts file (resolved against the current directory when relative).
    public var hosts: String
    /// Start the hosts file's workers on this machine (`local`) or connect to running ones (`external`).
    public var launch: Launch
    /// Shared-secret file; nil: the launcher generates one.
    public var secretFile: String?

    public enum Launch: String, Codable, CaseIterable, Sendable { case local, external }
}

/// Which upstream DiT sampler a part drives the model with (all on the denoiser seam, `UpstreamSampler`).
public enum DiTSampler: String, Codable, CaseIterable, Sendable {
    case ddpm, ddim
    case rectifiedFlow = "rectified_flow"

    public func sampler(steps: Int) -> UpstreamSampler {
        switch self {
        case .ddpm: return .ddpm(steps: steps)
        case .ddim: return .ddim(steps: steps)
        case .rectifiedFlow: return .rectifiedFlowEuler(steps: steps)
        }
    }
}

public struct LoadBalanceSuite: Codable, Equatable, Sendable {
    /// MoE model id sampled.
    public var model: String
    public var execution: ExecutionMode
    public var sampler: DiTSampler
    /// Sampling steps (each step is one recorded model call per image, two with CFG).
    public var steps: Int
    public var cfgScale: Double
    /// Class labels sampled (0..<1000).
    public var classes: [Int]
    public var samplesPerClass: Int
    /// Also count the null-class half of the CFG batch (DiT-MoE's analysis counts only the conditional half).
    public var countUnconditional: Bool
    /// Placement what-if: extra expert slots per worker available for replicas.
    public var extraSlotsPerWorker: Int
    /// Layers that get heatmaps (nil: all).
    public var heatmapLayers: [Int]?
    /// MoE model ids sampled the same way for a side-by-side of per-layer balance (e.g. the balance-loss and
    /// shared-expert ablations); always in-process.
    public var ablations: [String] = []
}


public enum DLGMode: String, Codable, CaseIterable, Sendable { case on, off, both }

