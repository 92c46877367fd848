// The expert worker: owns some routed experts of every MoE layer, serves EXPERT requests over the wire protocol
// (docs/protocol.md). A malformed or unauthenticated peer gets ERROR and loses its connection; the worker and its
// other connections carry on.
//
// Threading: the accept thread (`serve()`) accepts and runs every handshake itself (`HandshakeAcceptor`, poll), so
// an unauthenticated connection costs no thread; each authenticated connection (its socket, buffers and byte
// counters) then belongs to its own thread. Open connections (handshaking + authenticated) are at most
// `maxConnections`. The worker's shared state (stop flag, per-expert stats, per-connection traffic snapshots) is
// guarded by `lock`. Nobody touches another thread's socket: `stop()` only sets a flag, which the accept thread and
// every connection thread look at at least every `stopPollInterval` while they wait.

import CSupport
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
    /// Seconds from accept to READY.
    public var handshakeTimeout: Double
    /// Seconds an authenticated connection may stay silent between requests.
    public var idleTimeout: Double
    /// Seconds to receive a whole frame once its first byte has arrived (a peer stalling mid-frame is dropped).
    public var frameTimeout: Double
    /// Open connections at most, handshaking and authenticated together; more get ERROR tooManyConnections.
    /// Capped at start to the file-descriptor limit minus a reserve.
    public var maxConnections: Int
    /// Where operational problems go (accept failures); one line per call, stderr by default.
    public var log: (String) -> Void

    public init(name: String, host: String = "127.0.0.1", port: Int, numaNode: Int? = nil, secret: WireSecret,
                limits: WireLimits = .default, handshakeTimeout: Double = 10, idleTimeout: Double = 3600,
                frameTimeout: Double = 30, maxConnections: Int = 256,
                log: @escaping (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) {
        self.name = name; self.host = host; self.port = port; self.numaNode = numaNode; self.secret = secret
        self.limits = limits; self.handshakeTimeout = handshakeTimeout; self.idleTimeout = idleTimeout
        self.frameTimeout = frameTimeout; self.maxConnections = maxConnections
        self.log = log
    }
}

public final class ExpertWorker: @unchecked Sendable {
    public let options: WorkerOptions
    public let weights: DiTWeights
    public let experts: [Int]
    public let fingerprint: ModelFingerprint
    /// The placement check made when the worker started (every sampled weight page), reported in WELCOME; STATS
    /// reports a fresh `numaCheck()`.
    public private(set) var numa: NUMAReport = .unbound
    /// The bound port (the kernel's choice when options.port is 0).
    public var port: Int { listener.port }
    /// Longest time a connection thread waits before looking at the stop flag again (seconds).
    public static let stopPollInterval = 0.05

    let listener: WireListener
    private let modules: [[Int: SwiGLUExpert]]   // [layer][expert]
    /// First and last byte of every hosted expert's two matrices, in every layer.
    let weightSamples: [UnsafeRawPointer]
    private let lock = NSLock()
    // Guarded by `lock`:
    private var stats: [Int: ExpertStat] = [:]
    /// Byte counts of each open connection as its own thread last published them, and the sum over closed ones.
    private var traffic: [ObjectIdentifier: Traffic] = [:]
    private var closedTraffic = Traffic()
    private var stopping = false
    private var serving = false
    private var activeThreads = 0
    private var sampleCursor = 0
    /// Accept errors seen by `serve()` (for tests and the log).
    private(set) var acceptFailures = 0
    /// Handshakes that failed or timed out, and connections refused for the limit (copied from the acceptor).
    private var failedHandshakeCount = 0
    private var refusedConnectionCount = 0
    private let started = monotonicNanos()
    /// Connection scratch kept between connections, and malloc_trim after closes (WorkerSessionPool.swift).
    let sessions = WorkerSessionPool(capacity: ExpertWorker.pooledSessions, maxRows: ExpertWorker.pooledRows,
                                     maxFrameBytes: ExpertWorker.pooledFrameBytes, trimInterval: 1)
    /// Idle connection sessions kept (a worker usually serves one coordinator connection per client process).
    static let pooledSessions = 4
    /// Activation rows a pooled session keeps (a larger request's buffers are freed when its connection ends).
    static let pooledRows = 4096
    /// Frame-buffer bytes a pooled session keeps (send + receive capacity; larger ones are freed at the close).
    static let pooledFrameBytes = 16 << 20

    struct Traffic { var received: UInt64 = 0, sent: UInt64 = 0 }

    /// Binds to the NUMA node first, then loads only `experts`; when bound, their matrices are copied into memory
    /// allocated on that node (checkpoint weights would otherwise stay in the page cache wherever it is).
    public static func start(config: DiTConfig, source: WeightSource, experts: [Int], options: WorkerOptions,
                             precision: ComputePrecision = .fp32) throws -> ExpertWorker {
        if let node = options.numaNode { try NUMA.bind(node: node) }
        guard config.isMoE else {
            throw ClusterError.badConfig("model \(config.name) is dense: it has no routed experts to serve")
        }
        if let bad = experts.first(where: { $0 < 0 || $0 >= config.numExperts }) {
            throw ClusterError.badConfig("expert \(bad) is outside 0...\(config.numExperts - 1) for \(config.name)")
        }
        let weights = try DiTWeights(config: config, source: source, scope: .experts(Set(experts)),
                                     materialize: options.numaNode.map { NUMA.allocator(node: $0) }, precision: precision)
        return try ExpertWorker(weights: weights, experts: experts, options: options)
    }

    public init(weights: DiTWeights, experts: [Int], options: WorkerOptions) throws {
        self.weights = weights
        self.experts = experts.sorted()
        self.options = options
        fingerprint = ModelFingerprint(serving: weights)
        let c = weights.config
        modules = (0..<c.depth).map { l in
            Dictionary(uniqueKeysWithValues: experts.map { e in
                let w = weights.expert(layer: l, expert: e)
                return (e, SwiGLUExpert(gateUp: w.gateUp, down: w.down))
            })
        }
        let hosted = self.experts
        weightSamples = (0..<c.depth).flatMap { l in
            hosted.flatMap { e -> [UnsafeRawPointer] in
                let w = weights.expert(layer: l, expert: e)
                return [w.gateUp, w.down].flatMap { m in [m.base, m.base + (m.count * m.dtype.byteSize - 1)] }
            }
        }
        for e in experts { stats[e] = ExpertStat(expert: UInt32(e), requests: 0, rows: 0, computeNanos: 0) }
        listener = try WireListener(host: options.host, port: options.port)
        if let node = options.numaNode { numa = NUMA.report(requestedNode: node, weightPages: weightSamples) }
    }

    /// Samples checked by each `numaCheck()`; successive checks rotate through all of `weightSamples`.
    static let samplesPerCheck = 16

    /// A fresh placement check from the calling thread: the node it runs on and the node of up to
    /// `samplesPerCheck` weight pages spread over all layers and experts (a different subset each call).
    public func numaCheck() -> NUMAReport {
        guard let node = options.numaNode, !weightSamples.isEmpty else { return numa }
        return NUMA.report(requestedNode: node, weightPages: nextSampleIndices().map { weightSamples[$0] })
    }

    /// Every `stride`-th sample from a rotating offset: at most `samplesPerCheck`, all of them over `stride` calls.
    func nextSampleIndices() -> [Int] {
        let n = weightSamples.count
        let stride = max(1, (n + Self.samplesPerCheck - 1) / Self.samplesPerCheck)
        lock.lock()
        let offset = sampleCursor % stride
        sampleCursor += 1
        lock.unlock()
        return Array(Swift.stride(from: offset, to: n, by: stride))
    }

    // MARK: serving

    /// glibc malloc settings of a worker process. Every authenticated connection runs on its own short-lived
    /// thread, and by default glibc hands new threads arenas of their own (up to 8 per core) that each keep their
    /// high-water mark, and raises its mmap threshold whenever a large block is freed, so later connection buffers
    /// land in those arenas: connection churn then grows RSS for minutes and leaves it noisy. With two arenas and a
    /// fixed 64 KiB mmap threshold, a connection's frame and codec buffers (64 KiB and up) are mapped when it
    /// starts or grows them and returned to the kernel when it closes. Connection threads allocate only then, never
    /// per request, so neither setting costs anything on the request path.
    public static let mallocArenas: Int32 = 2
    public static let mmapThreshold = 64 << 10

    /// Process-wide settings for a process that runs a worker: call once, before loading weights.
    public static func configureProcess() {
        _ = moe_tune_malloc(mallocArenas, mmapThreshold)
    }

    /// File descriptors kept free of connections (weights, logs, the listener, libraries).
    static let reservedDescriptors = 64

    /// Connections at most, given the process's file-descriptor limit (raised to its hard limit first).
    public static func connectionCap(_ wanted: Int) -> Int {
        var r = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &r) == 0 else { return wanted }
        if r.rlim_cur < r.rlim_max {
            var raised = r
            raised.rlim_cur = r.rlim_max
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 { r = raised }
        }
        let usable = r.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(r.rlim_cur) - reservedDescriptors
        return max(1, min(wanted, usable))
    }

    /// Accepts connections and runs their handshakes on this thread until `stop()` or a SHUTDOWN; each
    /// authenticated connection gets its own thread. A failing accept (e.g. EMFILE) is logged once per distinct
    /// error and retried with exponential back-off, while the handshakes in progress go on.
    public func serve() {
        lock.lock(); serving = true; lock.unlock()
        var backoff = AcceptBackoff()
        var acceptPausedUntil: UInt64 = 0
        let acceptor = HandshakeAcceptor(listener: listener, options: .init(
            secret: options.secret, fingerprint: fingerprint, limits: options.limits,
            handshakeTimeout: options.handshakeTimeout, maxConnections: Self.connectionCap(options.maxConnections),
            name: "worker \(options.name)"))
        let welcome = Welcome(nonce: [], fingerprint: fingerprint, workerName: options.name, numa: numa,
                              experts: experts.map(UInt32.init), proof: [])
        while !isStopping {
            lock.lock(); let active = activeThreads; lock.unlock()
            let accepting = monotonicNanos() >= acceptPausedUntil
            let failure = acceptor.step(timeout: Self.stopPollInterval, accept: accepting, active: active,
                                        welcome: { _ in welcome }) { conn, _ in self.startConnectionThread(conn) }
            lock.lock(); failedHandshakeCount = acceptor.failedHandshakes; refusedConnectionCount = acceptor.refused; lock.unlock()
            if let error = failure {
                lock.lock(); acceptFailures += 1; lock.unlock()
                if let first = backoff.failed(error) {
                    options.log("worker \(options.name): cannot accept connections on \(options.host):\(port): \(first); "
                                + "retrying every \(AcceptBackoff.initial)–\(AcceptBackoff.maximum) s (each distinct error is logged once)")
                }
                acceptPausedUntil = monotonicNanos() &+ UInt64(backoff.delay * 1e9)
            } else if accepting {
                backoff.succeeded()
            }
        }
        acceptor.closeAll(.shuttingDown, "worker \(options.name) is stopping")
        listener.close()
        lock.lock(); serving = false; lock.unlock()
    }

    /// Gives an authenticated connection its own thread (it counts in `activeThreads` from here on).
    private func startConnectionThread(_ conn: WireConnection) {
        let id = ObjectIdentifier(conn)
        lock.lock()
        traffic[id] = Traffic(received: conn.bytesReceived, sent: conn.bytesSent)
        activeThreads += 1
        lock.unlock()
        let t = Thread { [self] in
            self.handle(conn)
            conn.close()
            self.lock.lock()
            let last = self.traffic.removeValue(forKey: id) ?? Traffic()
            self.closedTraffic.received &+= last.received
            self.closedTraffic.sent &+= last.sent
            self.activeThreads -= 1
            self.lock.unlock()
            self.sessions.trimIfDue()
        }
        t.stackSize = 1 << 20
        t.start()
    }

    /// Starts `serve()` on a background thread.
    public func serveInBackground() {
        lock.lock(); serving = true; lock.unlock()   // so that an immediate waitForConnections() waits for it
        Thread.detachNewThread { [self] in self.serve() }
    }

    /// Stops accepting and ends every connection within `stopPollInterval` (an idle peer gets ERROR shuttingDown;
    /// a request being computed is finished and answered first). Only sets a flag: each connection thread closes
    /// its own socket.
    public func stop() {
        lock.lock(); stopping = true; lock.unlock()
    }

    /// Handshakes that failed or timed out since the start.
    public var handshakesFailed: Int { lock.lock(); defer { lock.unlock() }; return failedHandshakeCount }
    /// Connections refused with ERROR tooManyConnections since the start.
    public var refusedConnections: Int { lock.lock(); defer { lock.unlock() }; return refusedConnectionCount }

    public var isStopping: Bool { lock.lock(); defer { lock.unlock() }; return stopping }

    /// Waits (up to `timeout` s) until the accept loop has closed the listener and every connection thread has
    /// finished, after `stop()` or a SHUTDOWN. Returns false on timeout.
    @discardableResult
    public func waitForConnections(timeout: Double = 5) -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while true {
            lock.lock(); let done = activeThreads == 0 && !serving; lock.unlock()
            if done { return true }
            if Date() >= end { return false }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    public func statsReply() -> StatsReply {
        let check = numaCheck()
        lock.lock(); defer { lock.unlock() }
        var total = closedTraffic
        for t in traffic.values { total.received &+= t.received; total.sent &+= t.sent }
        return StatsReply(workerName: options.name, numa: check, uptimeNanos: monotonicNanos() - started,
                          bytesIn: total.received, bytesOut: total.sent, connections: UInt32(traffic.count),
                          experts: experts.map { stats[$0]! })
    }

    /// Publishes `conn`'s byte counters (called by the connection's own thread only).
    private func publishTraffic(_ conn: WireConnection) {
        lock.lock()
        traffic[ObjectIdentifier(conn)] = Traffic(received: conn.bytesReceived, sent: conn.bytesSent)
        lock.unlock()
    }

    private func sleepUnlessStopping(_ seconds: Double) {
        let end = monotonicNanos() &+ UInt64(seconds * 1e9)
        while !isStopping && monotonicNanos() < end { Thread.sleep(forTimeInterval: min(Self.stopPollInterval, seconds)) }
    }

    enum Readiness { case readable, stopping, idle }

    /// Waits on the calling thread's own connection until it has something to read (data, hang-up or error: the
    /// next receive tells which), the worker stops, or `timeout` passes; looks at the stop flag every
    /// `stopPollInterval`.
    private func awaitPeer(_ conn: WireConnection, timeout: Double) -> Readiness {
        let end = monotonicNanos() &+ UInt64(max(0, min(timeout, 1e6)) * 1e9)
        while true {
            if isStopping { return .stopping }
            let now = monotonicNanos()
            if now >= end { return .idle }
            var pfd = pollfd(fd: conn.fd, events: Int16(POLLIN), revents: 0)
            let ms = Int32(min(Double(end - now) / 1e6 + 1, Self.stopPollInterval * 1000))
            let rc = poll(&pfd, 1, ms)
            if rc > 0 { return isStopping ? .stopping : .readable }
            if rc < 0 && errno != EINTR { return .readable }
        }
    }

    /// One authenticated connection: requests until the peer leaves or misbehaves. Waiting for the next request
    /// is bounded by `idleTimeout`; once a frame has started, all of it must arrive within `frameTimeout`.
    func handle(_ conn: WireConnection) {
        defer { publishTraffic(conn) }
        publishTraffic(conn)
        let session = sessions.take { WorkerSession(worker: self) }
        // The session's frame buffers serve this connection; the handshake's go back to it when it ends.
        let handshakeBuffers = conn.swapBuffers(send: session.sendBuffer, receive: session.receiveBuffer)
        defer {
            (session.sendBuffer, session.receiveBuffer) = conn.swapBuffers(send: handshakeBuffers.send, receive: handshakeBuffers.receive)
            sessions.give(session)
        }
        while conn.isOpen {
            switch awaitPeer(conn, timeout: options.idleTimeout) {
            case .readable: break
            case .stopping: conn.fail(.shuttingDown, "worker \(options.name) is stopping"); return
            case .idle: conn.fail(.timeout, "idle for \(options.idleTimeout) s"); return
            }
            let frame: ReceivedFrame
            defer { publishTraffic(conn) }
            do { frame = try conn.receive(timeout: options.frameTimeout) } catch let e as WireError {
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
    /// Its scratch grows with the largest shard decoded or encoded (rows × dim); `release()` starts a fresh one.
    private(set) var codec = ShardCodec()
    /// The connection's frame buffers while it is served (WireConnection.swapBuffers); they grow to the largest
    /// frame seen, and a pooled session keeps them.
    var sendBuffer = WireBuffer()
    var receiveBuffer = WireBuffer()
    var groups: [ExpertGroup] = []
    var input: UnsafeMutablePointer<Float>
    /// BF16 bits of shuffled and/or LZ4-compressed BF16 activations `[rows, dim]`, decoded without widening, when
    /// `takesBF16` (else a 1-element placeholder). Raw BF16 shards are read in place instead (`directBF16`).
    var inputBF16: UnsafeMutablePointer<UInt16>
    var gate: UnsafeMutablePointer<Float>
    var output: UnsafeMutablePointer<Float>
    /// Rows the buffers above hold (grown by `ensure`, never shrunk, so requests allocate nothing once warm).
    var capacityRows = 0
    let hidden: UnsafeMutablePointer<Float>
    let widen: UnsafeMutablePointer<Float>?
    let dim: Int
    /// Every hosted expert's GEMMs take BF16 inputs (see `directBF16`).
    let takesBF16: Bool

    init(worker: ExpertWorker) {
        self.worker = worker
        let c = worker.weights.config
        dim = c.hiddenSize
        hidden = .allocate(capacity: SwiGLUExpert.hiddenScratchCount(width: c.expertHidden))
        let w = worker.experts.first.flatMap { worker.module(layer: 0, expert: $0)?.widenScratchCount } ?? 0
        widen = w > 0 ? .allocate(capacity: w) : nil
        input = .allocate(capacity: 1); gate = .allocate(capacity: 1); output = .allocate(capacity: 1)
        inputBF16 = .allocate(capacity: 1)
        takesBF16 = worker.experts.allSatisfy { e in (0..<c.depth).allSatisfy { worker.module(layer: $0, expert: e)?.takesBF16 == true } }
    }
    deinit {
        hidden.deallocate(); widen?.deallocate(); input.deallocate(); gate.deallocate(); output.deallocate()
        inputBF16.deallocate()
    }

    /// Frees the activation buffers grown by `ensure(rows:)` and the codec's scratch, which grew with them (the
    /// next request allocates them again at its size). The frame buffers are kept: `releaseFrameBuffers()`.
    func releaseRows() {
        input.deallocate(); gate.deallocate(); output.deallocate(); inputBF16.deallocate()
        input = .allocate(capacity: 1); gate = .allocate(capacity: 1); output = .allocate(capacity: 1)
        inputBF16 = .allocate(capacity: 1)
        capacityRows = 0
        codec = ShardCodec()
    }

    /// Replaces the frame buffers by fresh 64 KiB ones.
    func releaseFrameBuffers() {
        sendBuffer = WireBuffer(); receiveBuffer = WireBuffer()
    }

    /// Bytes of the frame buffers (their capacity; only touched pages are resident).
    var frameBufferBytes: Int { sendBuffer.capacity + receiveBuffer.capacity }

    func ensure(rows: Int) {
        guard rows > capacityRows else { return }
        input.deallocate(); gate.deallocate(); output.deallocate(); inputBF16.deallocate()
        capacityRows = max(rows, capacityRows * 2)
        input = .allocate(capacity: capacityRows * dim)
        gate = .allocate(capacity: capacityRows)
        output = .allocate(capacity: capacityRows * dim)
        inputBF16 = .allocate(capacity: takesBF16 ? capacityRows * dim : 1)
    }

    /// The stored values of a raw BF16 shard when this worker's experts compute in BF16, else nil.
    func directBF16(_ shard: ShardView) -> UnsafePointer<UInt16>? {
        guard shard.dtype == .bf16, !shard.shuffle, !shard.compressed, takesBF16,
              let base = shard.stored.baseAddress, Int(bitPattern: base) % 2 == 0 else { return nil }
        return base.assumingMemoryBound(to: UInt16.self)
    }

    /// The activations of `shard` as BF16 bits `[rows, dim]` when this worker's experts compute in BF16 and the
    /// shard is BF16 (any shuffle/LZ4): in place when raw and aligned, else decoded into `inputBF16` (LZ4 and/or
    /// unshuffle, no widening). nil otherwise: the caller decodes to FP32 (`input`). Needs `ensure(rows:)` first.
    func activationsBF16(_ shard: ShardView) throws -> UnsafePointer<UInt16>? {
        guard takesBF16, shard.dtype == .bf16 else { return nil }
        if let direct = directBF16(shard) { return direct }
        try codec.decode(bf16: shard, into: inputBF16)
        return UnsafePointer(inputBF16)
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
        // BF16 activations go to BF16 GEMMs as BF16 bits, whatever the shuffle/LZ4 (decoding to FP32 would widen
        // them only for the GEMM to round them back to the same values).
        let bf16 = try activationsBF16(req.activations)
        if bf16 == nil { try codec.decode(req.activations, into: input) }
        try codec.decode(req.gate, into: gate)
        let t1 = monotonicNanos()
        var row = 0
        for g in groups {
            let n = Int(g.rows)
            let ts = monotonicNanos()
            let m = worker.module(layer: req.layer, expert: Int(g.expert))!
            if let bf16 {
                m.apply(bf16: bf16 + row * dim, rows: n, into: output + row * dim, rowScale: gate + row, accumulate: false,
                        hidden: hidden)
            } else {
                m.apply(input + row * dim, rows: n, into: output + row * dim, rowScale: gate + row, accumulate: false,
                        hidden: hidden, widen: widen)
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

/// How `ExpertWorker.serve()` retries a failing accept: the delay doubles from `initial` to `maximum` while
/// failures continue and resets on the next success; each distinct error text is reported once per worker.
struct AcceptBackoff {
    static let initial = 0.05
    static let maximum = 5.0
    private(set) var delay = 0.0
    private var reported: Set<String> = []

    /// Records a failure; returns the error's text the first time this text is seen, nil after.
    mutating func failed(_ error: Error) -> String? {
        delay = delay == 0 ? Self.initial : min(delay * 2, Self.maximum)
        let text = "\(error)"
        return reported.insert(text).inserted ? text : nil
    }

    mutating func succeeded() { delay = 0 }
}
