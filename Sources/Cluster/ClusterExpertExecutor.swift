// The coordinator side of the cluster: an ExpertExecutor that ships each expert's shard to a worker that owns it.
//
// Per MoE layer: every expert with rows is assigned to a live owner (among replicas the one with the fewest rows
// assigned so far in this layer), each worker gets one EXPERT frame with all its experts' rows, workers run
// concurrently, and results are scattered back into `shards.output`. A worker that fails (timeout, disconnect,
// ERROR) is marked dead and its experts are retried on live replicas; if an expert has none, execute throws an
// error naming the worker. Every request has a deadline, so a forward never hangs. A dead worker is reconnected
// (full handshake) at the start of a later `execute`, once its back-off has passed: `reconnectBackoff` seconds after
// it died, doubling after every failed attempt up to `maxReconnectBackoff`.

import DiT
import Foundation
import Wire

public struct ClusterOptions {
    public var secret: WireSecret
    /// The model identity the workers must serve (`ModelFingerprint(hashing: weights.fingerprint)`).
    public var fingerprint: ModelFingerprint
    public var codec: ShardOptions
    public var connectTimeout: Double
    /// Deadline of one EXPERT round trip, in seconds.
    public var requestTimeout: Double
    public var name: String
    public var limits: WireLimits
    /// Seconds after a worker is marked dead before the first reconnect attempt; each failed attempt doubles
    /// the wait, up to `maxReconnectBackoff`. An attempt costs at most `connectTimeout` on the forward that makes it.
    public var reconnectBackoff: Double
    public var maxReconnectBackoff: Double

    public init(secret: WireSecret, fingerprint: ModelFingerprint, codec: ShardOptions = .default,
                connectTimeout: Double = 5, requestTimeout: Double = 30, name: String = "coordinator",
                limits: WireLimits = .default, reconnectBackoff: Double = 1, maxReconnectBackoff: Double = 30) {
        self.secret = secret; self.fingerprint = fingerprint; self.codec = codec; self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout; self.name = name; self.limits = limits
        self.reconnectBackoff = reconnectBackoff; self.maxReconnectBackoff = maxReconnectBackoff
    }
}

/// Where a layer's routed-expert time went, along the critical path (the worker that finished last), summed over
/// calls. compute + codec + transfer + waiting = wall time of `execute`.
public struct ClusterTiming: Sendable, Equatable {
    /// Worker time inside the expert GEMMs.
    public var computeNanos: UInt64 = 0
    /// Coordinator gather/encode/decode/scatter plus the worker's decode/encode.
    public var codecNanos: UInt64 = 0
    /// Round trip minus the worker's compute and codec time: the network and the kernels.
    public var transferNanos: UInt64 = 0
    /// The rest of the wall time: dispatch, waiting for the slowest worker, retries.
    public var waitingNanos: UInt64 = 0
    public var layers = 0
    public var bytesSent: UInt64 = 0
    public var bytesReceived: UInt64 = 0
    public var retries = 0
    /// Dead workers brought back by a reconnect.
    public var reconnects = 0
    public init() {}
    public var totalNanos: UInt64 { computeNanos + codecNanos + transferNanos + waitingNanos }
}

public final class ClusterExpertExecutor: PhaseReportingExecutor {
    /// One connected worker.
    final class Remote {
        let entry: HostEntry
        var conn: WireConnection
        var welcome: Welcome
        let codec = ShardCodec()
        var alive = true
        var failure = ""
        /// Current reconnect back-off (s; 0 while healthy) and the monotonic time of the next attempt.
        var backoff = 0.0
        var retryAt: UInt64 = 0
        var nextRequest: UInt64 = 1
        // Per-layer work (reused buffers).
        var experts: [Int] = []
        var groups: [ExpertGroup] = []
        var resultGroups: [ExpertGroup] = []
        var input: [Float] = []
        var gate: [Float] = []
        var output: [Float] = []
        // Per-layer measurements.
        var codecNanos: UInt64 = 0
        var roundTripNanos: UInt64 = 0
        var workerComputeNanos: UInt64 = 0
        var workerCodecNanos: UInt64 = 0
        var sentBytes = 0
        var receivedBytes = 0
        var error: Error?
        // A dedicated thread per worker: GCD's pool has one thread per core, so blocking I/O on it would
        // serialise workers beyond the core count.
        private let dispatch = DispatchThread()

        init(entry: HostEntry, conn: WireConnection, welcome: Welcome) {
            self.entry = entry; self.conn = conn; self.welcome = welcome
        }

        /// Runs `body` on this worker's thread; pair with `wait()`.
        func start(_ body: @escaping () -> Void) { dispatch.start(body) }
        func wait() { dispatch.wait() }
        func stopThread() { dispatch.stop() }
    }

    /// A thread that runs one job at a time when asked. It holds only this object, never its owner.
    final class DispatchThread: @unchecked Sendable {
        private let go = DispatchSemaphore(value: 0)
        private let done = DispatchSemaphore(value: 0)
        private var job: (() -> Void)?
        private var running = false

        func start(_ body: @escaping () -> Void) {
            if !running {
                running = true
                let t = Thread { [self] in
                    while true {
                        self.go.wait()
                        guard let j = self.job else { return }
                        j()
                        self.done.signal()
                    }
                }
                t.stackSize = 1 << 20
                t.start()
            }
            job = body
            go.signal()
        }

        func wait() { done.wait() }

        /// Ends the thread (if any) after its current job.
        func stop() {
            guard running else { return }
            running = false
            job = nil
            go.signal()
        }
    }

    public let hosts: HostsFile
    public let options: ClusterOptions
    public let expertCount: Int
    public private(set) var timing = ClusterTiming()
    let remotes: [Remote]
    /// owners[e] = indices into `remotes` of the workers that load expert e.
    let owners: [[Int]]

    /// Connects to every worker in `hosts` and refuses to start unless all of them prove the secret, speak this
    /// protocol version, serve the same model and load the experts the hosts file lists for them.
    public init(hosts: HostsFile, expertCount: Int, options: ClusterOptions) throws {
        try hosts.validate(expertCount: expertCount)
        self.hosts = hosts
        self.options = options
        self.expertCount = expertCount
        var remotes: [Remote] = []
        for entry in hosts.entries {
            do {
                let (conn, w) = try Self.connect(entry, hosts: hosts, options: options)
                remotes.append(Remote(entry: entry, conn: conn, welcome: w))
            } catch {
                remotes.forEach { $0.conn.close() }
                throw error
            }
        }
        self.remotes = remotes
        owners = (0..<expertCount).map { e in remotes.indices.filter { remotes[$0].entry.experts.contains(e) } }
    }

    /// Connects to one worker, authenticates, and checks that it loads the experts `hosts` lists for it.
    static func connect(_ entry: HostEntry, hosts: HostsFile, options: ClusterOptions) throws -> (WireConnection, Welcome) {
        do {
            let conn = try WireConnection.connect(host: entry.address, port: entry.port,
                                                  timeout: options.connectTimeout, limits: options.limits)
            let w = try Handshake.client(conn, secret: options.secret, fingerprint: options.fingerprint,
                                         peerName: options.name, timeout: options.connectTimeout)
            let loaded = Set(w.experts.map(Int.init))
            let missing = entry.experts.filter { !loaded.contains($0) }
            guard missing.isEmpty else {
                conn.close()
                throw ClusterError.disagreement("worker \(entry.name) (\(hosts.path):\(entry.line)) is listed with experts \(formatExpertList(entry.experts)) but loads \(formatExpertList(Array(loaded)))")
            }
            return (conn, w)
        } catch let e as ClusterError {
            throw e
        } catch {
            throw ClusterError.connectFailed(worker: entry.name, endpoint: entry.endpoint, reason: "\(error)")
        }
    }

    deinit { close() }

    public func close() {
        for r in remotes { r.conn.close(); r.stopThread() }
    }

    /// Worker names and what they reported in WELCOME.
    public var workers: [(name: String, endpoint: String, numa: NUMAReport, alive: Bool)] {
        remotes.map { ($0.entry.name, $0.entry.endpoint, $0.welcome.numa, $0.alive) }
    }

    /// Workers currently marked dead, why, and when (seconds from now) the next reconnect attempt is due.
    public var deadWorkers: [(name: String, endpoint: String, reason: String, retryIn: Double)] {
        let now = monotonicNanos()
        return remotes.filter { !$0.alive }.map {
            ($0.entry.name, $0.entry.endpoint, $0.failure, $0.retryAt > now ? Double($0.retryAt - now) * 1e-9 : 0)
        }
    }

    /// Marks `r` dead after `error` and schedules its next reconnect attempt.
    func markDead(_ r: Remote, _ error: Error) {
        r.alive = false
        r.failure = "\(error)"
        r.conn.close()
        r.backoff = r.backoff == 0 ? options.reconnectBackoff : min(2 * r.backoff, options.maxReconnectBackoff)
        r.retryAt = monotonicNanos() &+ UInt64(max(0, r.backoff) * 1e9)
    }

    /// Tries to reconnect every dead worker whose back-off has passed.
    func reviveDueWorkers() {
        let now = monotonicNanos()
        for r in remotes where !r.alive && now >= r.retryAt {
            do {
                let (conn, w) = try Self.connect(r.entry, hosts: hosts, options: options)
                r.conn = conn
                r.welcome = w
                r.alive = true
                timing.reconnects += 1
            } catch {
                markDead(r, error)
            }
        }
    }

    public func resetTiming() { timing = ClusterTiming() }

    /// Moves codec, transfer and waiting out of the model's `routedExperts` phase (which timed the whole
    /// `execute`) into their own phases; worker compute stays in `routedExperts`. Resets `timing`.
    public func movePhases(into profile: inout PhaseProfile) {
        let moved = timing.codecNanos + timing.transferNanos + timing.waitingNanos
        let routed = profile.nanoseconds[.routedExperts] ?? 0
        profile.nanoseconds[.routedExperts] = routed > moved ? routed - moved : 0
        profile.add(.codec, timing.codecNanos)
        profile.add(.transfer, timing.transferNanos)
        profile.add(.waiting, timing.waitingNanos)
        resetTiming()
    }

    public func execute(_ s: ExpertShards) throws {
        let t0 = monotonicNanos()
        if remotes.contains(where: { !$0.alive }) { reviveDueWorkers() }
        var pending = (0..<s.expertCount).filter { s.rowCount(expert: $0) > 0 }
        var criticalRemote: Remote?
        var criticalEnd: UInt64 = 0
        var attempts = 0
        while !pending.isEmpty {
            attempts += 1
            // Assign each pending expert to its least-loaded live owner (rows assigned this round).
            for r in remotes { r.experts.removeAll(keepingCapacity: true) }
            var load = [Int](repeating: 0, count: remotes.count)
            for e in pending {
                let live = owners[e].filter { remotes[$0].alive }
                guard let pick = live.min(by: { (load[$0], $0) < (load[$1], $1) }) else {
                    let dead = owners[e].map { remotes[$0] }.first
                    throw ClusterError.workerFailed(worker: dead?.entry.name ?? "?", endpoint: dead?.entry.endpoint ?? "?",
                                                    reason: dead?.failure ?? "no worker hosts it",
                                                    experts: pending.filter { e2 in !owners[e2].contains { remotes[$0].alive } })
                }
                remotes[pick].experts.append(e)
                load[pick] += s.rowCount(expert: e)
            }
            let busy = remotes.filter { !$0.experts.isEmpty }
            for r in busy {
                r.start { [unowned self] in
                    do { try self.run(r, s) } catch { r.error = error }
                }
            }
            for r in busy { r.wait() }
            pending = []
            for r in busy {
                if let e = r.error {
                    markDead(r, e)
                    pending += r.experts
                    r.error = nil
                    timing.retries += 1
                } else {
                    r.backoff = 0
                    timing.bytesSent &+= UInt64(r.sentBytes)
                    timing.bytesReceived &+= UInt64(r.receivedBytes)
                    let end = r.codecNanos + r.roundTripNanos
                    if end >= criticalEnd { criticalEnd = end; criticalRemote = r }
                }
            }
            pending.sort()
            if attempts > remotes.count + 1 { throw ClusterError.disagreement("expert dispatch did not converge") }
        }
        let wall = monotonicNanos() - t0
        timing.layers += 1
        if let r = criticalRemote {
            let compute = min(r.workerComputeNanos, r.roundTripNanos)
            let workerCodec = min(r.workerCodecNanos, r.roundTripNanos - compute)
            let codec = r.codecNanos + workerCodec
            let transfer = r.roundTripNanos - compute - workerCodec
            timing.computeNanos += compute
            timing.codecNanos += codec
            timing.transferNanos += transfer
            timing.waitingNanos += wall > compute + codec + transfer ? wall - (compute + codec + transfer) : 0
        } else {
            timing.waitingNanos += wall
        }
    }

    /// One worker's share of a layer: gather, encode, send, receive, decode, scatter.
    func run(_ r: Remote, _ s: ExpertShards) throws {
        let d = s.dim
        let tc0 = monotonicNanos()
        r.groups.removeAll(keepingCapacity: true)
        var rows = 0
        for e in r.experts { let n = s.rowCount(expert: e); r.groups.append(ExpertGroup(expert: UInt32(e), rows: UInt32(n))); rows += n }
        if r.input.count < rows * d { r.input = [Float](repeating: 0, count: rows * d); r.output = r.input }
        if r.gate.count < rows { r.gate = [Float](repeating: 0, count: rows) }
        var at = 0
        r.input.withUnsafeMutableBufferPointer { inp in
            r.gate.withUnsafeMutableBufferPointer { g in
                for e in r.experts {
                    let lo = s.offsets[e], n = s.rowCount(expert: e)
                    (inp.baseAddress! + at * d).update(from: s.input + lo * d, count: n * d)
                    (g.baseAddress! + at).update(from: s.gateWeights + lo, count: n)
                    at += n
                }
            }
        }
        let requestID = r.nextRequest
        r.nextRequest += 1
        let codecOptions = options.codec
        try r.input.withUnsafeBufferPointer { inp in
            try r.gate.withUnsafeBufferPointer { g in
                try Frame.encode(into: r.conn.sendBuffer, type: .expert, requestID: requestID,
                                 checksum: r.conn.payloadChecksums) { b in
                    try ExpertMessage.encodeRequest(into: b, layer: s.layer, dim: d, groups: r.groups,
                                                    activations: inp.baseAddress!, gate: g.baseAddress!,
                                                    codec: r.codec, options: codecOptions)
                }
            }
        }
        let tc1 = monotonicNanos()
        let sentBytes = r.conn.sendBuffer.count
        try r.conn.sendBuffered(timeout: options.requestTimeout)
        let frame = try r.conn.receive(timeout: options.requestTimeout)
        let tr = monotonicNanos()
        try frame.throwIfError()
        guard frame.header.type == .expertResult else {
            throw WireError.unexpectedMessage(got: "\(frame.header.type)", expected: "EXPERT_RESULT")
        }
        guard frame.header.requestID == requestID else {
            throw WireError.malformed(field: "requestID", reason: "\(frame.header.requestID), expected \(requestID)")
        }
        let result = try ExpertMessage.decodeResult(frame.payload, groups: &r.resultGroups, limits: r.conn.limits)
        guard result.layer == s.layer, result.dim == d, r.resultGroups == r.groups else {
            throw WireError.malformed(field: "expertResult.groups", reason: "the result does not match the request")
        }
        try r.output.withUnsafeMutableBufferPointer { out in
            try r.codec.decode(result.output, into: out.baseAddress!)
            at = 0
            for e in r.experts {
                let lo = s.offsets[e], n = s.rowCount(expert: e)
                (s.output + lo * d).update(from: out.baseAddress! + at * d, count: n * d)
                at += n
            }
        }
        let tc2 = monotonicNanos()
        r.codecNanos = (tc1 - tc0) + (tc2 - tr)
        r.roundTripNanos = tr - tc1
        r.workerComputeNanos = result.computeNanos
        r.workerCodecNanos = result.codecNanos
        r.sentBytes = sentBytes
        r.receivedBytes = Frame.headerSize + frame.payload.count
        // Link speed for the automatic LZ4 decision: bytes both ways over the time not spent computing.
        let busyWorker = result.computeNanos + result.codecNanos
        if r.roundTripNanos > busyWorker {
            r.codec.auto.observeLink(bytes: sentBytes + Frame.headerSize + frame.payload.count,
                                     seconds: Double(r.roundTripNanos - busyWorker) * 1e-9)
        }
    }

    /// STATS from every live worker.
    public func stats(timeout: Double = 5) throws -> [StatsReply] {
        try remotes.filter(\.alive).map { r in
            try r.conn.send(StatsRequest(), requestID: 0, timeout: timeout)
            return try r.conn.receive(timeout: timeout).decode(StatsReply.self)
        }
    }
}
