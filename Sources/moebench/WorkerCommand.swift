import ArgumentParser
import Cluster
import DiT
import Foundation
import Tensor
import Wire

/// `moebench worker`: serve some routed experts of a DiT-MoE over the wire protocol (docs/protocol.md).
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Serve a DiT-MoE's routed experts to a coordinator, bound to one NUMA node.",
        discussion: """
        Loads only the listed experts (of every MoE layer), binds its threads and memory to --numa-node with \
        libnuma and checks that it worked (the node of the CPU it runs on and of its weight pages), then serves \
        coordinators over TCP: handshakes on the accept thread, one thread per authenticated connection, at most \
        --max-connections open at once. Peers must prove the shared secret in --secret-file; anything malformed \
        gets an ERROR and loses its connection while the others keep being served. STATS reports rows served and \
        compute time per expert. A SHUTDOWN from an authenticated peer ends the process. \
        Usually started for you by `moebench cluster up` from a hosts file.

        Example:
          moebench worker --listen 127.0.0.1:7101 --numa-node 0 --experts 0-3 \\
                          --config DiT-MoE-S/2-8E2A --secret-file .moebench-cluster/secret
        """)

    @Option(help: "Address and port to listen on, e.g. 127.0.0.1:7101 or [::1]:7101.")
    var listen: String

    @Option(name: .customLong("numa-node"), help: "NUMA node to bind threads and memory to (-1: do not bind).")
    var numaNode: Int = 0

    @Option(help: "Experts to load and serve: ids and ranges, e.g. 0-3,6.")
    var experts: String

    @OptionGroup var model: ModelOptions

    @Option(name: .customLong("secret-file"), help: "File whose bytes are the cluster's shared secret (≥ 16 bytes).")
    var secretFile: String

    @Option(help: "Worker name reported to coordinators (default: the listen address).")
    var name: String?

    @Option(name: .customLong("max-frame-mib"), help: "Largest accepted frame payload in MiB, 1…4096.")
    var maxFrameMiB: Int = 256

    @Option(name: .customLong("max-decoded-mib"), help: "Largest decoded size of one request's values (rows × dim × 4 B) in MiB, 1…4096.")
    var maxDecodedMiB: Int = WireLimits.defaultMaxDecodedBytes >> 20

    @Option(name: .customLong("max-connections"), help: "Open connections at most (handshaking and authenticated), 1…65536; more are refused.")
    var maxConnections: Int = 256

    func validate() throws {
        guard (-1...4095).contains(numaNode) else { throw ValidationError("--numa-node must be -1 (do not bind) or a node number 0…4095, got \(numaNode)") }
        guard (1...4096).contains(maxFrameMiB) else { throw ValidationError("--max-frame-mib must be between 1 and 4096, got \(maxFrameMiB)") }
        guard (1...4096).contains(maxDecodedMiB) else { throw ValidationError("--max-decoded-mib must be between 1 and 4096, got \(maxDecodedMiB)") }
        guard (1...65536).contains(maxConnections) else { throw ValidationError("--max-connections must be between 1 and 65536, got \(maxConnections)") }
    }

    func run() throws {
        ExpertWorker.configureProcess()
        BLASThreads.set(1)
        Parallel.threads = 1
        let precision = try model.applyCompute()
        let (host, port) = try Self.parseEndpoint(listen)
        let expertList: [Int]
        do { expertList = try parseExpertList(experts) } catch {
            throw ValidationError("--experts '\(experts)': \(error)")
        }
        do {
            let cfg = try model.resolveConfig()
            let secret = try WireSecret(contentsOf: secretFile)
            let options = WorkerOptions(name: name ?? listen, host: host, port: port,
                                        numaNode: numaNode >= 0 ? numaNode : nil, secret: secret,
                                        limits: WireLimits(maxPayload: maxFrameMiB << 20, maxDecodedBytes: maxDecodedMiB << 20),
                                        maxConnections: maxConnections)
            let start = Date()
            let worker = try ExpertWorker.start(config: cfg, source: model.source,
                                                experts: expertList, options: options, precision: precision)
            let n = worker.numa
            let numaText = n.requestedNode < 0 ? "not bound"
                : "node \(n.requestedNode): CPU on node \(n.cpuNode), weight pages on node \(n.pageNode) — "
                  + (n.verified ? "verified" : "NOT verified")
            print("worker \(options.name): \(cfg.name) experts \(formatExpertList(expertList)) loaded in "
                  + String(format: "%.1f s", Date().timeIntervalSince(start)) + "; NUMA \(numaText)")
            print("GEMM: \(GEMMBackend.current.rawValue), \(precision.rawValue); weights: \(worker.weights.packingSummary ?? "used as stored")")
            print("listening on \(host):\(worker.port), model fingerprint \(worker.fingerprint)")
            fflush(stdout)
            worker.serve()
            worker.waitForConnections()
            print("worker \(options.name): shut down")
        } catch let e as DiTError {
            throw RuntimeError(e.description)
        } catch let e as NUMAError {
            throw RuntimeError("--numa-node \(numaNode): \(e)")
        } catch let e as WireError {
            throw RuntimeError("\(e)")
        } catch let e as ClusterError {
            throw RuntimeError("\(e)")
        }
    }

    /// `host:port`, `[v6]:port`.
    static func parseEndpoint(_ s: String) throws -> (String, Int) {
        var host: Substring, portText: Substring
        if s.hasPrefix("["), let close = s.firstIndex(of: "]") {
            host = s[s.index(after: s.startIndex)..<close]
            portText = s[s.index(after: close)...].dropFirst()
        } else if let colon = s.lastIndex(of: ":") {
            host = s[..<colon]; portText = s[s.index(after: colon)...]
        } else {
            throw ValidationError("--listen '\(s)': expected ADDRESS:PORT, e.g. 127.0.0.1:7101")
        }
        guard let port = Int(portText), (0...65535).contains(port), !host.isEmpty else {
            throw ValidationError("--listen '\(s)': expected ADDRESS:PORT with a port in 0...65535")
        }
        return (String(host), port)
    }
}
