import ArgumentParser
import Cluster
import DiT
import Foundation
import Metrics
import Tensor
import Wire

/// A DiT-MoE forward with its experts on cluster workers, beside the in-process forward in the same run.
struct ClusterForwardBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster-forward",
        abstract: "DiT-MoE forward on expert workers vs in-process, with the routed-expert time split.",
        discussion: """
        Alternates the in-process forward (the baseline) and the same forward with its routed experts on workers, \
        --iterations pairs after a warm-up of each, and prints the median ms of each and the median of the per-pair \
        ratios (alternating keeps a shared machine's drifting load from favouring either side). The cluster's routed-expert \
        time is split along the critical path of each layer into compute (worker GEMMs), codec (coordinator gather/ \
        encode/decode/scatter plus worker decode/encode), transfer (round trip minus worker compute and codec) and \
        waiting (the rest). Without --hosts, two workers are started inside this process on loopback ports, both with \
        every expert (--layout replicated, like the repository's default `hosts`: each layer's rows are split evenly \
        between them) or with experts 0-3 and 4-7 (--layout halves); with --hosts, the workers of that file are used \
        (start them with `moebench cluster up` with the same --config, --seed and --precision). Also reports max \
        |difference| to the in-process output, the experts split between workers per forward, dead workers and \
        every fail-over (a worker abandoned mid-forward, its rows sent to a replica).
        """)

    @Option(help: "Model config.")
    var config = "DiT-MoE-S/2-8E2A"

    @Option(help: "Images per forward.")
    var batch = 8

    @Option(help: "Timed forwards per mode (median reported).")
    var iterations = 5

    @Option(help: "Seed of the random weights (workers must use the same).")
    var seed: UInt64 = 0

    @Option(parsing: .upToNextOption, help: "Shard codecs to run, e.g. f32 f32+shuffle+auto bf16+shuffle+lz4.")
    var codecs: [String] = ["f32", "f32+shuffle+auto"]

    @Option(help: "In-process workers: replicated (both load every expert; rows split evenly) or halves (0-3 | 4-7).")
    var layout = "replicated"

    @Flag(help: "Same as --layout replicated.")
    var replicate = false

    @Option(help: "GEMM precision of coordinator and workers: fp32, or bf16 (BF16 inputs, FP32 accumulation).")
    var precision = "fp32"

    @Option(name: .customLong("failover-timeout"), help: "Seconds before a worker whose experts have a live replica is abandoned.")
    var failoverTimeout = 1.0

    @Option(help: "Use the workers of this hosts file instead of starting two in-process workers.")
    var hosts: String?

    @Option(name: .customLong("secret-file"), help: "Secret for --hosts (default: next to the hosts file).")
    var secretFile: String?

    @Option(help: "Coordinator worker threads (default: all cores).")
    var threads: Int?

    @Flag(help: "Print JSON lines.")
    var json = false

    func run() throws {
        BLASThreads.set(1)
        Parallel.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        let compute: ComputePrecision
        do { compute = try ComputePrecision.parse(precision) } catch { throw ValidationError("\(error)") }
        guard layout == "replicated" || layout == "halves" else {
            throw ValidationError("--layout: expected replicated or halves, got '\(layout)'")
        }
        let cfg = try DiTConfig.resolve(config)
        let model = try DiTModel(weights: DiTWeights(config: cfg, source: .random(seed: seed), precision: compute))
        let image = cfg.inChannels * cfg.inputSize * cfg.inputSize
        var s: UInt64 = 5
        let x = (0..<(batch * image)).map { _ -> Float in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s >> 11) % 2000) / 1000 - 1
        }
        let t = [Float](repeating: 400, count: batch), y = (0..<batch).map { Int32($0 % cfg.numClasses) }
        let outCount = batch * cfg.outChannels * cfg.inputSize * cfg.inputSize
        var reference = [Float](repeating: 0, count: outCount)

        let inProcess = model.executor
        func forwardMs(_ out: inout [Float]) throws -> Double {
            let t0 = monotonicNanos()
            try model.forward(x: x, t: t, y: y, batch: batch, out: &out)
            return Double(monotonicNanos() - t0) / 1e6
        }
        // The in-process reference output (also the warm-up).
        _ = try forwardMs(&reference)
        if !json {
            print("\(cfg.name), batch \(batch), \(compute.rawValue) (\(GEMMBackend.current.rawValue)), \(Parallel.threads) coordinator thread(s); "
                  + "in-process and cluster forwards alternate (\(iterations) pairs), medians reported; load average \(loadAverage())")
            print("cluster codec          in-proc ms  cluster ms  ratio(median of pairs)  routed ms = compute + codec + transfer + waiting   MB/fwd  max|Δ|")
        }

        // Workers: in-process on loopback unless a hosts file is given.
        var localWorkers: [ExpertWorker] = []
        let hostsFile: HostsFile
        let secret: WireSecret
        if let hosts {
            hostsFile = try HostsFile.load(path: hosts)
            secret = try WireSecret(contentsOf: secretFile ?? ClusterRuntime.defaultSecretPath(forHosts: hosts))
        } else {
            secret = try WireSecret(bytes: WireSecret.randomBytes())
            let half = cfg.numExperts / 2
            var entries: [HostEntry] = []
            let experts = replicate || layout == "replicated" ? [Array(0..<cfg.numExperts), Array(0..<cfg.numExperts)]
                                                              : [Array(0..<half), Array(half..<cfg.numExperts)]
            for (i, experts) in experts.enumerated() {
                let w = try ExpertWorker.start(config: cfg, source: .random(seed: seed), experts: experts,
                                               options: WorkerOptions(name: "w\(i)", port: 0, secret: secret), precision: compute)
                w.serveInBackground()
                localWorkers.append(w)
                entries.append(HostEntry(name: "w\(i)", address: "127.0.0.1", port: w.port, numaNode: 0, experts: experts, line: i + 1))
            }
            hostsFile = HostsFile(path: "in-process", entries: entries)
        }
        defer { for w in localWorkers { w.stop() } }

        for codecText in codecs {
            guard let codec = ShardOptions(parsing: codecText) else {
                throw ValidationError("codec '\(codecText)': expected dtype[+shuffle][+lz4|+auto], e.g. f32+shuffle+auto")
            }
            let exec = try ClusterExpertExecutor(hosts: hostsFile, expertCount: cfg.numExperts,
                                                 options: ClusterOptions(secret: secret,
                                                                         fingerprint: ModelFingerprint(serving: model.weights),
                                                                         codec: codec, failoverTimeout: failoverTimeout))
            for d in exec.deadWorkers where !json {
                print("  dead at start: \(d.name) at \(d.endpoint) (\(d.reason)); its experts run on live replicas")
            }
            var out = [Float](repeating: 0, count: outCount)
            var scratch = [Float](repeating: 0, count: outCount)
            model.executor = exec
            _ = try forwardMs(&out)   // warm-up
            let warmUp = exec.timing
            exec.resetTiming()
            var local: [Double] = [], remote: [Double] = [], ratios: [Double] = []
            for _ in 0..<iterations {
                model.executor = inProcess
                let a = try forwardMs(&scratch)
                model.executor = exec
                let b = try forwardMs(&out)
                local.append(a); remote.append(b); ratios.append(b / a)
            }
            model.executor = inProcess
            var tm = exec.timing
            tm.failovers = warmUp.failovers + tm.failovers   // fail-overs are reported wherever they happened
            tm.retries += warmUp.retries
            let per = 1e6 * Double(iterations)
            let maxDiff = zip(out, reference).map { abs($0 - $1) }.max() ?? 0
            let mb = Double(tm.bytesSent + tm.bytesReceived) / 1e6 / Double(iterations)
            let (ms, baseMs, ratio) = (median(remote), median(local), median(ratios))
            if json {
                let failovers = tm.failovers.map { "\"" + "\($0)".replacingOccurrences(of: "\"", with: "'") + "\"" }.joined(separator: ",")
                print(#"{"mode":"cluster","config":"\#(cfg.name)","batch":\#(batch),"precision":"\#(compute.rawValue)","codec":"\#(codec)","split_experts_per_forward":\#(Double(tm.splitExperts) / Double(iterations)),"retries":\#(tm.retries),"failovers":[\#(failovers)],"dead_workers":[\#(exec.deadWorkers.map { "\"\($0.name)\"" }.joined(separator: ","))],"load_average":"\#(loadAverage())","in_process_ms":\#(baseMs),"ms":\#(ms),"ratio_to_in_process":\#(ratio),"compute_ms":\#(Double(tm.computeNanos) / per),"codec_ms":\#(Double(tm.codecNanos) / per),"transfer_ms":\#(Double(tm.transferNanos) / per),"waiting_ms":\#(Double(tm.waitingNanos) / per),"mb_per_forward":\#(mb),"max_abs_diff":\#(maxDiff)}"#)
            } else {
                print(codec.description.padding(toLength: 22, withPad: " ", startingAt: 0)
                      + String(format: "%10.1f  %10.1f  %10.2fx              %6.1f = %6.1f + %5.1f + %6.1f + %6.1f   %6.1f  %.1e",
                               baseMs, ms, ratio, Double(tm.totalNanos) / per, Double(tm.computeNanos) / per,
                               Double(tm.codecNanos) / per, Double(tm.transferNanos) / per, Double(tm.waitingNanos) / per,
                               mb, maxDiff))
                print("  \(String(format: "%.1f", Double(tm.splitExperts) / Double(iterations))) expert(s) split between workers per forward; "
                      + "\(tm.retries) failed request(s)")
                for f in tm.failovers { print("  fail-over: \(f)") }
                for d in exec.deadWorkers { print("  dead: \(d.name) at \(d.endpoint) (\(d.reason)), next reconnect in \(String(format: "%.1f", d.retryIn)) s") }
            }
            exec.close()
        }
        model.executor = inProcess
    }
}

/// The 1-, 5- and 15-minute load averages, as /proc/loadavg prints them.
func loadAverage() -> String {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "?" }
    return text.split(separator: " ").prefix(3).joined(separator: " ")
}
