import ArgumentParser
import Cluster
import DiT
import Foundation
import Wire

/// `moebench cluster up|down|status`: the local workers of a hosts file.
struct ClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Start, stop and query the expert workers listed in a hosts file.",
        discussion: """
        The hosts file lists one worker a line: name, address, port, NUMA node, experts (e.g. `w0 127.0.0.1 7101 0
        0-3`; `#` starts a comment; an expert on several lines is replicated). `up` starts the workers whose address
        is on this machine and waits until each answers an authenticated handshake; `status` shows each worker's
        NUMA placement and per-expert load; `down` asks them to exit. State (generated secret, logs, pid files)
        lives in .moebench-cluster/ next to the hosts file.

        Example:
          moebench cluster up --config DiT-MoE-S/2-8E2A
          moebench forward --config DiT-MoE-S/2-8E2A --input in.safetensors --output out.safetensors --hosts hosts
          moebench cluster status
          moebench cluster down
        """,
        subcommands: [Up.self, Down.self, Status.self])

    struct Common: ParsableArguments {
        @Option(help: "The hosts file.")
        var hosts = "hosts"

        @Option(name: .customLong("secret-file"), help: "Shared secret (default: .moebench-cluster/secret next to the hosts file; `up` creates it, mode 0600).")
        var secretFile: String?

        @Flag(help: "Print JSON instead of the table.")
        var json = false

        var secretPath: String { secretFile ?? ClusterRuntime.defaultSecretPath(forHosts: hosts) }

        func loadHosts() throws -> HostsFile {
            do { return try HostsFile.load(path: hosts) } catch let e as HostsFileError { throw RuntimeError(e.description) }
        }
    }

    struct Up: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start this machine's workers and wait until they are ready.")
        @OptionGroup var common: Common

        @OptionGroup var model: ModelOptions

        @Option(help: "Seconds to wait for every worker to become ready, 1…3600.")
        var timeout: Double = 120

        func validate() throws {
            guard timeout.isFinite, (1...3600).contains(timeout) else { throw ValidationError("--timeout must be between 1 and 3600 seconds, got \(timeout)") }
        }

        func run() throws {
            let cfg = try model.resolveConfig()
            let precision = try model.applyCompute()
            do {
                let cluster = try LocalCluster(hostsPath: common.hosts, secretPath: common.secretPath)
                try cluster.up(configArgument: model.config, config: cfg, weights: model.weights, seed: model.seed, timeout: timeout,
                               precision: precision, workerArguments: model.computeArguments) { print($0) }
            } catch let e as HostsFileError { throw RuntimeError(e.description) }
            catch let e as ClusterError { throw RuntimeError("\(e)") }
        }
    }

    struct Down: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Ask this hosts file's workers to exit.")
        @OptionGroup var common: Common

        func run() throws {
            do {
                try LocalCluster(hostsPath: common.hosts, secretPath: common.secretPath).down { print($0) }
            } catch let e as HostsFileError { throw RuntimeError(e.description) }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show each worker's state, NUMA placement and per-expert load.")
        @OptionGroup var common: Common

        func run() throws {
            let hosts = try common.loadHosts()
            let secret = try WireSecret(contentsOf: common.secretPath)
            var rows: [[String: Any]] = []
            if !common.json {
                print("worker  endpoint              state   NUMA (req/cpu/pages)  experts   rows served  compute ms  uptime s")
            }
            for e in hosts.entries {
                do {
                    let s = try ClusterRuntime.stats(e, secret: secret)
                    let rowsServed = s.experts.reduce(0) { $0 + $1.rows }
                    let ms = Double(s.experts.reduce(0) { $0 + $1.computeNanos }) / 1e6
                    let numa = "\(s.numa.requestedNode)/\(s.numa.cpuNode)/\(s.numa.pageNode) " + (s.numa.verified ? "ok" : "--")
                    if common.json {
                        rows.append(["name": e.name, "endpoint": e.endpoint, "state": "up", "numa_requested": Int(s.numa.requestedNode),
                                     "numa_cpu": Int(s.numa.cpuNode), "numa_pages": Int(s.numa.pageNode), "numa_verified": s.numa.verified,
                                     "uptime_s": Double(s.uptimeNanos) / 1e9,
                                     "experts": s.experts.map { ["expert": Int($0.expert), "requests": Int($0.requests), "rows": Int($0.rows),
                                                                 "compute_ms": Double($0.computeNanos) / 1e6] }])
                    } else {
                        print(e.name.padding(toLength: 8, withPad: " ", startingAt: 0)
                              + e.endpoint.padding(toLength: 22, withPad: " ", startingAt: 0) + "up      "
                              + numa.padding(toLength: 22, withPad: " ", startingAt: 0)
                              + formatExpertList(s.experts.map { Int($0.expert) }).padding(toLength: 10, withPad: " ", startingAt: 0)
                              + String(rowsServed).leftPadded(to: 11)
                              + String(format: "  %10.1f  %8.0f", ms, Double(s.uptimeNanos) / 1e9))
                    }
                } catch {
                    if common.json { rows.append(["name": e.name, "endpoint": e.endpoint, "state": "down", "error": "\(error)"]) }
                    else {
                        print(e.name.padding(toLength: 8, withPad: " ", startingAt: 0)
                              + e.endpoint.padding(toLength: 22, withPad: " ", startingAt: 0) + "down    \(error)")
                    }
                }
            }
            if common.json {
                let data = try JSONSerialization.data(withJSONObject: rows, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            }
        }
    }
}

fileprivate extension String {
    /// Right-aligns in `width` columns (no truncation).
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
