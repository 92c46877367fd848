// The expert worker: owns some routed experts of every MoE layer, serves EXPERT requests over the wire protocol
// (docs/protocol.md), one thread per connection. A malformed or unauthenticated peer gets ERROR and loses its
// connection; the worker and its other connections carry on.

import DiT
import Foundation
import Tensor
import Wire

public struct WorkerOptions {
    public var name: String
    public var host: String
    public var port: Int
    /// NUMA node to bind to; nil = do not bind.
    public var numaNode: Int?
    public var secret: WireSecret
    public var limits: WireLimits
    /// Handshake deadline and idle limit per request frame (seconds).
    public var handshakeTimeout: Double
    public var idleTimeout: Double

    public init(name: String, host: String = "127.0.0.1", port: Int, numaNode: Int? = nil, secret: WireSecret,
                limits: WireLimits = .default, handshakeTimeout: Double = 10, idleTimeout: Double = 3600) {
        self.name = name; self.host = host; self.port = port; self.numaNode = numaNode; self.secret = secret
        self.limits = limits; self.handshakeTimeout = handshakeTimeout; self.idleTimeout = idleTimeout
    }
}

public final class ExpertWorker: @unchecked Sendable {
    public let options: WorkerOptions
    public let weights: DiTWeights
    public let experts: [Int]
    public let fingerprint: ModelFingerprint
    /// Filled in by `bind`/`init`; reported in WELCOME and STATS.
    public private(set) var numa: NUMAReport = .unbound
    /// The bound port (the kernel's choice when options.port is 0).
    public var port: Int { listener.port }

    private let listener: WireListener
    private let modules: [[Int: SwiGLUExpert]]   // [layer][expert]
    private let lock = NSLock()
    private var stats: [Int: ExpertStat] = [:]
    private var connections: [ObjectIdentifier: WireConnection] = [:]
    private var stopping = false
    private var activeThreads = 0
    private let started = monotonicNanos()

    /// Binds to the NUMA node first (so weight pages are allocated there), then loads only `experts`.
    public static func start(config: DiTConfig, source: WeightSource, experts: [Int], options: WorkerOptions) throws
        -> ExpertWorker {
        if let node = options.numaNode { try NUMA.bind(node: node) }
        guard config.isMoE else {
            throw ClusterError.badConfig("model \(config.name) is dense: it has no routed experts to serve")
        }
        if let bad = experts.first(where: { $0 < 0 || $0 >= config.numExperts }) {
            throw ClusterError.badConfig("expert \(bad) is outside 0...\(config.numExperts - 1) for \(config.name)")
        }
        let weights = try DiTWeights(config: config, source: source, scope: .experts(Set(experts)))
        return try ExpertWorker(weights: weights, experts: experts, options: options)
    }

    public init(weights: DiTWeights, experts: [Int], options: WorkerOptions) throws {
        self.weights = weights
        self.experts = experts.sorted()
        self.options = options
        fingerprint = ModelFingerprint(hashing: weights.fingerprint)
        let c = weights.config
        modules = (0..<c.depth).map { l in
            Dictionary(uniqueKeysWithValues: experts.map { e in
                let w = weights.expert(layer: l, expert: e)
                return (e, SwiGLUExpert(gateUp: w.gateUp, down: w.down))
            })
        }
        for e in experts { stats[e] = ExpertStat(expert: UInt32(e), requests: 0, rows: 0, computeNanos: 0) }
        listener = try WireListener(host: options.host, port: options.port)
        if let node = options.numaNode {
            let pages = experts.prefix(4).map { UnsafeRawPointer(weights.expert(layer: 0, expert: $0).gateUp.base) }
            numa = NUMA.report(requestedNode: node, weightPages: pages)
        }
    }

    // MARK: serving

    /// Accepts connections until `stop()` or a SHUTDOWN; each connection gets its own thread.
    public func serve() {
        while true {
            lock.lock(); let s = stopping; lock.unlock()
            if s { break }
            guard let conn = try? listener.accept(timeout: 0.2, limits: options.limits) else { continue }
            lock.lock()
            connections[ObjectIdentifier(conn)] = conn
            activeThreads += 1
            lock.unlock()
            let t = Thread { [self] in
                self.handle(conn)
                self.lock.lock()
                self.connections[ObjectIdentifier(conn)] = nil
                self.activeThreads -= 1
                self.lock.unlock()
                conn.close()
            }
            t.stackSize = 1 << 20
            t.start()
        }
        listener.close()
    }

    /// Starts `serve()` on a background thread.
    public func serveInBackground() {
        Thread.detachNewThread { [self] in self.serve() }
    }

    /// Stops accepting and ends every connection (what a crash looks like to the coordinator, minus the exit).
    public func stop() {
        lock.lock()
        stopping = true
        let open = Array(connections.values)
        lock.unlock()
        for c in open where c.fd >= 0 { shutdown(c.fd, Int32(SHUT_RDWR)) }
    }

    public var isStopping: Bool { lock.lock(); defer { lock.unlock() }; return stopping }

    /// Waits (up to `timeout` s) for every connection thread to finish after `stop()`.
    public func waitForConnections(timeout: Double = 5) {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            lock.lock(); let n = activeThreads; lock.unlock()
            if n == 0 { return }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    public func statsReply() -> StatsReply {
        lock.lock(); defer { lock.unlock() }
        var bytesIn: UInt64 = 0, bytesOut: UInt64 = 0
        for c in connections.values { bytesIn &+= c.bytesReceived; bytesOut &+= c.bytesSent }
        return StatsReply(workerName: options.name, numa: numa, uptimeNanos: monotonicNanos() - started,
                          bytesIn: bytesIn, bytesOut: bytesOut, connections: UInt32(connections.count),
                          experts: experts.map { stats[$0]! })
    }

    /// One connection: handshake, then requests until the peer leaves or misbehaves.
    func handle(_ conn: WireConnection) {
        do {
            _ = try Handshake.server(conn, secret: options.secret, fingerprint: fingerprint,
                                     timeout: options.handshakeTimeout) { _ in
                Welcome(nonce: [], fingerprint: self.fingerprint, workerName: self.options.name, numa: self.numa,
                        experts: self.experts.map(UInt32.init), proof: [])
            }
        } catch {
            return   // the peer got ERROR (or left); nothing was computed for it
        }
        let session = WorkerSession(worker: self)
        while conn.isOpen {
            let frame: ReceivedFrame
            do { frame = try conn.receive(timeout: options.idleTimeout) } catch let e as WireError {
                if case .closed = e { return }
                conn.fail(e.code, e.description)
                return
            } catch { conn.fail(.internalError, "\(error)"); return }
            do {
                switch frame.header.type {
                case .expert:
                    try session.serveExpert(frame, on: conn)
                case .ping:
                    try conn.send(.pong, requestID: frame.header.requestID, payload: frame.payload)
                case .stats:
                    _ = try frame.decode(StatsRequest.self)
                    try conn.send(statsReply(), requestID: frame.header.requestID)
                case .shutdown:
                    _ = try frame.decode(Shutdown.self)
                    try conn.send(Shutdown(), requestID: frame.header.requestID)
                    lock.lock(); stopping = true; lock.unlock()
                    conn.close()
                    return
                case .error:
                    return
                default:
                    throw WireError.unexpectedMessage(got: "\(frame.header.type)", expected: "EXPERT, PING, STATS or SHUTDOWN")
                }
            } catch let e as WireError {
                conn.fail(e.code, e.description, requestID: frame.header.requestID)
                return
            } catch let e as ClusterError {
                conn.fail(e.wireCode, e.description, requestID: frame.header.requestID)
                return
            } catch {
                conn.fail(.internalError, "\(error)", requestID: frame.header.requestID)
                return
            }
        }
    }

    func record(expert: Int, rows: Int, nanos: UInt64) {
        lock.lock()
        stats[expert]!.requests += 1
        stats[expert]!.rows += UInt64(rows)
        stats[expert]!.computeNanos += nanos
        lock.unlock()
    }

    func module(layer: Int, expert: Int) -> SwiGLUExpert? {
        guard layer >= 0, layer < modules.count else { return nil }
        return modules[layer][expert]
    }
}

/// Per-connection buffers of a worker (grown as needed, reused for every request).
final class WorkerSession {
    let worker: ExpertWorker
    let codec = ShardCodec()
    var groups: [ExpertGroup] = []
    var input: UnsafeMutablePointer<Float>
    var gate: UnsafeMutablePointer<Float>
    var output: UnsafeMutablePointer<Float>
    var capacityRows = 0
    let hidden: UnsafeMutablePointer<Float>
    let widen: UnsafeMutablePointer<Float>?
    let dim: Int

    init(worker: ExpertWorker) {
        self.worker = worker
        let c = worker.weights.config
        dim = c.hiddenSize
        hidden = .allocate(capacity: SwiGLUExpert.maxChunkRows * 2 * c.expertHidden)
        let w = worker.experts.first.flatMap { worker.module(layer: 0, expert: $0)?.widenScratchCount } ?? 0
        widen = w > 0 ? .allocate(capacity: w) : nil
        input = .allocate(capacity: 1); gate = .allocate(capacity: 1); output = .allocate(capacity: 1)
    }
    deinit {
        hidden.deallocate(); widen?.deallocate(); input.deallocate(); gate.deallocate(); output.deallocate()
    }

    func ensure(rows: Int) {
        guard rows > capacityRows else { return }
        input.deallocate(); gate.deallocate(); output.deallocate()
        capacityRows = max(rows, capacityRows * 2)
        input = .allocate(capacity: capacityRows * dim)
        gate = .allocate(capacity: capacityRows)
        output = .allocate(capacity: capacityRows * dim)
    }

    func serveExpert(_ frame: ReceivedFrame, on conn: WireConnection) throws {
        let t0 = monotonicNanos()
        let req = try ExpertMessage.decodeRequest(frame.payload, groups: &groups, limits: conn.limits)
        guard req.dim == dim else {
            throw WireError.malformed(field: "expert.dim", reason: "\(req.dim), this model's hidden size is \(dim)")
        }
        guard req.layer < worker.weights.config.depth else {
            throw WireError.malformed(field: "expert.layer", reason: "\(req.layer), the model has \(worker.weights.config.depth) layers")
        }
        for g in groups where worker.module(layer: req.layer, expert: Int(g.expert)) == nil {
            throw ClusterError.expertNotHosted(worker: worker.options.name, expert: Int(g.expert))
        }
        ensure(rows: req.totalRows)
        try codec.decode(req.activations, into: input)
        try codec.decode(req.gate, into: gate)
        let t1 = monotonicNanos()
        var row = 0
        for g in groups {
            let n = Int(g.rows)
            let ts = monotonicNanos()
            worker.module(layer: req.layer, expert: Int(g.expert))!
                .apply(input + row * dim, rows: n, into: output + row * dim, accumulate: false, hidden: hidden, widen: widen)
            for r in row..<(row + n) {
                let gw = gate[r], o = output + r * dim
                for i in 0..<dim { o[i] *= gw }
            }
            worker.record(expert: Int(g.expert), rows: n, nanos: monotonicNanos() - ts)
            row += n
        }
        let t2 = monotonicNanos()
        let options = ShardOptions(dtype: req.activations.dtype, shuffle: req.activations.shuffle,
                                   compression: req.activations.compressed ? .lz4 : .none)
        let groupsCopy = groups
        let out = output
        try conn.send(.expertResult, requestID: frame.header.requestID) { b in
            try ExpertMessage.encodeResult(into: b, layer: req.layer, dim: dim, groups: groupsCopy, computeNanos: t2 - t1,
                                           codecNanos: t1 - t0, output: out, codec: codec, options: options)
        }
    }
}

public enum ClusterError: Error, Equatable, CustomStringConvertible {
    case badConfig(String)
    case expertNotHosted(worker: String, expert: Int)
    /// A worker could not be reached or refused the handshake.
    case connectFailed(worker: String, endpoint: String, reason: String)
    /// A worker failed during a forward and no replica could take its experts.
    case workerFailed(worker: String, endpoint: String, reason: String, experts: [Int])
    case disagreement(String)

    public var wireCode: WireErrorCode {
        switch self {
        case .expertNotHosted: return .expertNotHosted
        default: return .internalError
        }
    }

    public var description: String {
        switch self {
        case let .badConfig(s): return s
        case let .expertNotHosted(w, e): return "worker \(w) does not host expert \(e)"
        case let .connectFailed(w, ep, r): return "cannot use worker \(w) at \(ep): \(r)"
        case let .workerFailed(w, ep, r, ex):
            return "worker \(w) at \(ep) failed (\(r)) and no live replica hosts expert(s) \(formatExpertList(ex))"
        case let .disagreement(s): return s
        }
    }
}
