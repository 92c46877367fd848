import DiT
import Foundation
import Tensor
import Wire

/// Starting and stopping the workers of a hosts file that live on this machine — what `moebench cluster up|down`
/// and a suite with `launch = "local"` both do.
public struct LocalCluster {
    public let hosts: HostsFile
    public let hostsPath: String
    public let secretPath: String
    /// The moebench executable that runs `worker`.
    public let executable: String

    public init(hostsPath: String, secretPath: String? = nil, executable: String? = nil) throws {
        self.hostsPath = hostsPath
        hosts = try HostsFile.load(path: hostsPath)
        self.secretPath = secretPath ?? ClusterRuntime.defaultSecretPath(forHosts: hostsPath)
        self.executable = executable ?? (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// Launches every local worker that is not already answering, then waits until all of them accept an
    /// authenticated connection. `configArgument` is what the workers get as `--config` (a built-in name or a JSON
    /// file). Returns the workers it started. Remote entries are reported through `log` with the command to run there.
    @discardableResult
    public func up(configArgument: String, config: DiTConfig, weights: String?, seed: UInt64, timeout: Double = 120,
                   precision: ComputePrecision = .fp32, workerArguments: [String] = [],
                   log: (String) -> Void) throws -> [(HostEntry, Int32)] {
        try hosts.validate(expertCount: config.numExperts)
        let secret = try ClusterRuntime.loadOrCreateSecret(path: secretPath)
        let expected = ModelFingerprint(serving: try DiTWeights.fingerprint(
            config: config, source: weights.map { .safetensors(path: $0) } ?? .random(seed: seed)), precision: precision)
        let launcher = LocalLauncher(hostsPath: hostsPath, executable: executable)
        var started: [(HostEntry, Int32)] = []
        for e in hosts.entries {
            var args = ["--listen", e.address.contains(":") ? "[\(e.address)]:\(e.port)" : "\(e.address):\(e.port)",
                        "--numa-node", "\(e.numaNode)", "--experts", formatExpertList(e.experts), "--config", configArgument,
                        "--secret-file", secretPath, "--name", e.name]
            args += weights.map { ["--weights", $0] } ?? ["--seed", "\(seed)"]
            args += workerArguments
            guard ClusterRuntime.isLocal(e.address) else {
                log("\(e.name): \(e.address) is not this machine; start it there with:\n  moebench worker " + args.joined(separator: " "))
                continue
            }
            if let (c, welcome) = try? ClusterRuntime.connect(e, secret: secret, timeout: 1) {
                c.close()
                guard welcome.fingerprint == expected else {
                    throw ClusterError.badConfig("\(e.name) at \(e.endpoint) (hosts line \(e.line)) already serves another model "
                        + "(fingerprint \(welcome.fingerprint), expected \(expected)); run `moebench cluster down` first")
                }
                log("\(e.name): already running at \(e.endpoint) with this model")
                continue
            }
            let pid: Int32
            do { pid = try launcher.launch(e, workerArguments: args) } catch {
                for (_, p) in started { kill(p, SIGTERM); StartedWorkers.remove(p) }  // a failed start stops what it started
                throw error
            }
            StartedWorkers.add(pid)
            log("\(e.name): started pid \(pid) for experts \(formatExpertList(e.experts)) on NUMA node \(e.numaNode), log \(launcher.logFile(e))")
            started.append((e, pid))
        }
        let deadline = Date().addingTimeInterval(timeout)
        for (e, pid) in started {
            while true {
                if let (c, w) = try? ClusterRuntime.connect(e, secret: secret, timeout: 1) {
                    c.close()
                    log("\(e.name): ready at \(e.endpoint), NUMA \(w.numa.verified ? "verified on node \(w.numa.requestedNode)" : "NOT verified (cpu node \(w.numa.cpuNode), pages node \(w.numa.pageNode))")")
                    break
                }
                if !LocalLauncher.isRunning(pid) || Date() > deadline {
                    for (_, p) in started { kill(p, SIGTERM); StartedWorkers.remove(p) }  // a failed start stops what it started
                    let text = (try? String(contentsOfFile: launcher.logFile(e), encoding: .utf8)) ?? ""
                    throw ClusterError.badConfig("\(e.name) (hosts line \(e.line)) did not become ready"
                        + (LocalLauncher.isRunning(pid) ? " within \(timeout) s" : ": the process exited")
                        + ". Its log (\(launcher.logFile(e))):\n" + text.split(separator: "\n").suffix(10).joined(separator: "\n"))
                }
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
        return started
    }

    /// Asks the workers (all of the hosts file, or only `entries`) to exit; a local worker that does not answer but
    /// was started from here gets SIGTERM.
    public func down(entries: [HostEntry]? = nil, log: (String) -> Void) throws {
        let secret = try WireSecret(contentsOf: secretPath)
        let launcher = LocalLauncher(hostsPath: hostsPath, executable: "")
        for e in entries ?? hosts.entries {
            do {
                try ClusterRuntime.shutdown(e, secret: secret)
                log("\(e.name): shut down")
            } catch {
                if let pid = launcher.recordedPID(e), LocalLauncher.isRunning(pid) {
                    kill(pid, SIGTERM)
                    log("\(e.name): did not answer (\(error)); sent SIGTERM to pid \(pid)")
                } else {
                    log("\(e.name): not running (\(error))")
                }
            }
            if let pid = launcher.recordedPID(e) { StartedWorkers.remove(pid) }
            try? FileManager.default.removeItem(atPath: launcher.pidFile(e))
        }
    }
}
