import DiT
import Foundation
import Tensor
import Wire
@testable import Cluster

/// A small DiT-MoE (8 experts, top-2) that runs in milliseconds in debug builds.
let tinyConfig = DiTConfig(name: "tiny-moe", inputSize: 8, patchSize: 2, inChannels: 4, hiddenSize: 64, depth: 3,
                           numHeads: 4, numClasses: 10, numExperts: 8, numExpertsPerTok: 2)
let tinySource = WeightSource.random(seed: 11)
let testSecret = try! WireSecret(bytes: Array("cluster test secret, 32 bytes...".utf8))

/// Deterministic forward inputs for `batch` images.
struct TinyInput {
    var x: [Float], t: [Float], y: [Int32], batch: Int
    init(batch: Int, config: DiTConfig = tinyConfig) {
        self.batch = batch
        var s: UInt64 = 99
        x = (0..<(batch * config.inChannels * config.inputSize * config.inputSize)).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s >> 11) % 2000) / 1000 - 1
        }
        t = (0..<batch).map { Float(100 + 300 * $0) }
        y = (0..<batch).map { Int32($0 % config.numClasses) }
    }

    func run(_ model: DiTModel) throws -> [Float] {
        let c = model.config
        var out = [Float](repeating: 0, count: batch * c.outChannels * c.inputSize * c.inputSize)
        try model.forward(x: x, t: t, y: y, batch: batch, out: &out)
        return out
    }
}

/// In-process workers on ephemeral loopback ports, and the hosts file that lists them.
final class TestCluster {
    var workers: [ExpertWorker] = []
    var hosts: HostsFile

    init(_ layout: [(name: String, experts: [Int])], config: DiTConfig = tinyConfig, source: WeightSource = tinySource,
         secret: WireSecret = testSecret, configure: (inout WorkerOptions) -> Void = { _ in }) throws {
        var entries: [HostEntry] = []
        for (i, l) in layout.enumerated() {
            var options = WorkerOptions(name: l.name, port: 0, numaNode: nil, secret: secret)
            configure(&options)
            let w = try ExpertWorker.start(config: config, source: source, experts: l.experts, options: options)
            w.serveInBackground()
            workers.append(w)
            entries.append(HostEntry(name: l.name, address: "127.0.0.1", port: w.port, numaNode: 0, experts: l.experts, line: i + 1))
        }
        hosts = HostsFile(path: "test-hosts", entries: entries)
    }

    func executor(secret: WireSecret = testSecret, fingerprint: ModelFingerprint? = nil, codec: ShardOptions = .default,
                  requestTimeout: Double = 10, weights: DiTWeights) throws -> ClusterExpertExecutor {
        try ClusterExpertExecutor(hosts: hosts, expertCount: weights.config.numExperts,
                                  options: ClusterOptions(secret: secret,
                                                          fingerprint: fingerprint ?? ModelFingerprint(hashing: weights.fingerprint),
                                                          codec: codec, requestTimeout: requestTimeout))
    }

    func stopAll() {
        for w in workers { w.stop() }
        for w in workers { w.waitForConnections() }
    }
    deinit { stopAll() }
}

/// Runs a hook before delegating a given layer (to kill a worker in the middle of a forward).
final class HookedExecutor: ExpertExecutor {
    let inner: ExpertExecutor
    let layer: Int
    let hook: () -> Void
    init(inner: ExpertExecutor, beforeLayer layer: Int, hook: @escaping () -> Void) {
        self.inner = inner; self.layer = layer; self.hook = hook
    }
    func execute(_ s: ExpertShards) throws {
        if s.layer == layer { hook() }
        try inner.execute(s)
    }
}

/// |a − b| ≤ rel·|a| + rel·1e-2·max|a| for every element (relative 1e-5 by default; the small absolute floor keeps
/// entries near zero from failing on cancellation).
func maxRelativeViolation(_ a: [Float], _ b: [Float], rel: Float = 1e-5) -> (ok: Bool, worst: Float) {
    precondition(a.count == b.count)
    let scale = a.map { abs($0) }.max() ?? 0
    var ok = true, worst: Float = 0
    for i in 0..<a.count {
        let err = abs(a[i] - b[i])
        let allowed = rel * abs(a[i]) + rel * 1e-2 * scale
        if err > allowed { ok = false }
        worst = max(worst, err / max(abs(a[i]), 1e-2 * scale))
    }
    return (ok, worst)
}

/// Threads of this process now (`/proc/self/task`).
func threadCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? -1
}

/// Resident set size of this process in bytes (`/proc/self/statm`).
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return -1 }
    let fields = text.split(separator: " ")
    return fields.count > 1 ? (Int(fields[1]) ?? -1) * Int(sysconf(Int32(_SC_PAGESIZE))) : -1
}

/// A valid LZ4 block that decodes to `count` (≥ 25) zero bytes in about `count / 255` bytes: one literal 0, one
/// long match at offset 1, and the 5 closing literals the format requires.
func lz4ZeroBlock(decodedBytes count: Int) -> [UInt8] {
    precondition(count >= 25)
    let match = count - 6            // 1 literal before, 5 literals after
    var rest = match - 4 - 15        // beyond the minimum match and the token's 15
    var out: [UInt8] = [0x1F, 0x00, 0x01, 0x00]   // token (1 literal, match code 15), literal, offset 1
    while rest >= 255 { out.append(0xFF); rest -= 255 }
    out.append(UInt8(rest))
    out += [0x50, 0, 0, 0, 0, 0]     // 5 literals, no match
    return out
}

/// Connects and completes the handshake with `w`.
func authenticatedClient(_ w: ExpertWorker) throws -> WireConnection {
    let c = try WireConnection.connect(host: "127.0.0.1", port: w.port)
    _ = try Handshake.client(c, secret: testSecret, fingerprint: w.fingerprint, peerName: "test")
    return c
}

/// Whether `fd` has something to read (data or hang-up) within `timeout` seconds, without consuming it.
func readable(_ fd: Int32, timeout: Double = 0) -> Bool {
    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&p, 1, Int32(timeout * 1000)) > 0
}

/// A complete frame (header and checksums) carrying `m`.
func frameBytes<M: WireMessage>(_ m: M, requestID: UInt64 = 7) throws -> [UInt8] {
    let b = WireBuffer()
    try Frame.encode(into: b, type: M.messageType, requestID: requestID) { try m.encode(into: $0) }
    return Array(b.bytes)
}

/// A complete frame of `type` whose payload is `payload`.
func frameBytes(type: MessageType, requestID: UInt64 = 7, payload: [UInt8]) throws -> [UInt8] {
    let b = WireBuffer()
    try Frame.encode(into: b, type: type, requestID: requestID) { $0.append(bytes: payload) }
    return Array(b.bytes)
}
