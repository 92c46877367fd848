// The suite's access to the Cluster module: start (or join) the workers of the profile's hosts file, hand the
// model a cluster expert executor, and shut down what the suite started.
import Cluster
import DiT
import Foundation
import Metrics
import Tensor
import Wire

enum HostsPlacement {
    /// The expert placement a hosts file describes (for per-worker and per-NUMA-node loads).
    static func load(path: String, experts: Int) throws -> ExpertPlacement {
        let hosts = try HostsFile.load(path: path)
        try hosts.validate(expertCount: experts)
        return try placement(hosts, experts: experts)
    }

    static func placement(_ hosts: HostsFile, experts: Int) throws -> ExpertPlacement {
        try ExpertPlacement(experts: experts, workers: hosts.entries.map {
            ExpertPlacement.Worker(name: $0.name, numaNode: $0.numaNode, experts: $0.experts)
        })
    }
}


/// The workers of a profile's `[cluster]` for one model: started (or connected to), their placement, executors
/// for the model's routed experts, and shutdown.
public final class LocalClusterSession {
    let cluster: LocalCluster
    /// Workers this session launched (and so stops); workers that were already running are left alone.
    let launched: [HostEntry]
    let progress: Progress
    public let placement: ExpertPlacement
    public let summary: String

    /// `launch = "local"` starts this machine's workers of the hosts file (with the suite's config and weights) and
    /// stops them at `shutdown`; `launch = "external"` only connects to workers someone else started.
    /// `workerArguments` are appended to each launched worker's command line (e.g. `--gemm`, `--precision`).
    public init(settings: ClusterSettings, config: DiTConfig, source: WeightSource, progress: Progress,
                precision: ComputePrecision = .fp32, workerArguments: [String] = []) throws {
        cluster = try LocalCluster(hostsPath: settings.hosts, secretPath: settings.secretFile)
        self.progress = progress
        placement = try HostsPlacement.placement(cluster.hosts, experts: config.numExperts)
        if settings.launch == .local {
            // Workers get the exact config (with any depth or image-size override) as a JSON file.
            let dir = ClusterRuntime.stateDirectory(forHosts: settings.hosts)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let configPath = dir + "/suite-config.json"
            try JSONEncoder().encode(config).write(to: URL(fileURLWithPath: configPath))
            var weights: String?, seed: UInt64 = 0
            switch source {
            case let .safetensors(path): weights = path
            case let .random(s): seed = s
            }
            launched = try cluster.up(configArgument: configPath, config: config, weights: weights, seed: seed,
                                      precision: precision, workerArguments: workerArguments) {
                progress.say("cluster: " + $0)
            }.map(\.0)
        } else {
            launched = []
        }
        let nodes = Set(cluster.hosts.entries.map(\.numaNode)).sorted()
        summary = "\(cluster.hosts.entries.count) worker(s) from \(settings.hosts) on NUMA node(s) \(nodes.map(String.init).joined(separator: ", "))"
            + (settings.launch == .local ? ", started by the suite" : ", started externally")
    }

    public func executor(for weights: DiTWeights, codec: ShardOptions) throws -> ExpertExecutor {
        try ClusterRuntime.executor(hostsPath: cluster.hostsPath, secretPath: cluster.secretPath, weights: weights,
                                    codec: codec)
    }

    public func shutdown() {
        guard !launched.isEmpty else { return }
        try? cluster.down(entries: launched) { progress.say("cluster: " + $0) }
    }
}
