// The coordinator side of the cluster: an ExpertExecutor that ships each expert's rows to workers that own it.
//
// Per MoE layer: the routed rows are divided among the live workers by `RowSplitter` (an expert with replicas
// may be split between them, so replicas compute parts of one expert's rows in parallel), each worker gets one
// EXPERT frame with its pieces, workers run concurrently on their own threads, and results land in
// `shards.output` (directly, when a worker's pieces are one contiguous block of rows, as with full replication).
// A worker that fails (error, disconnect, deadline) is marked dead and its pieces are sent again to live
// replicas; if an expert has none, execute throws an error naming the worker. Every request has a deadline, so a
// forward never hangs; it is short (`failoverTimeout`) when every expert of the request has another live replica.
// Fail-overs are recorded in `timing.failovers`.
//
// Workers that cannot be reached when the executor is made are marked dead, not fatal, as long as every expert
// has a live owner (`deadWorkers` lists them). A dead worker is reconnected (full handshake) on its own thread,
// beside the forwards, once its back-off has passed: `reconnectBackoff` seconds after it died, doubling after
// every failed attempt up to `maxReconnectBackoff`; it gets work again from the first layer after the handshake.

import DiT
import Foundation
import Wire

public final class ClusterExpertExecutor: PhaseReportingExecutor {
    /// One worker of the hosts file, connected or not.
    final class Remote {
        let index: Int
        let entry: HostEntry
        /// nil while the worker is dead.
        var conn: WireConnection?
        var welcome: Welcome?
        let codec = ShardCodec()
        var alive: Bool { conn != nil }
        var failure = ""
        /// Current reconnect back-off (s; 0 while healthy) and the monotonic time of the next attempt.
        var backoff = 0.0
        var retryAt: UInt64 = 0
        /// A reconnect is running on this worker's thread; its outcome is read after `tryWait()`.
        var reconnecting = false
        var reconnectResult: Result<(WireConnection, Welcome), Error>?
        var nextRequest: UInt64 = 1
        /// Moving average of this worker's round trips (ns), for its fail-over deadline.
        var recentRoundTripNanos = 0.0
        // Per-layer work (reused buffers).
        var pieces: [RowPiece] = []
        var groups: [ExpertGroup] = []
        var resultGroups: [ExpertGroup] = []
        var input: [Float] = []
        var gate: [Float] = []
        var output: [Float] = []
        var deadline = 0.0
        // Per-layer measurements.
        var codecNanos: UInt64 = 0
        var roundTripNanos: UInt64 = 0
        var workerComputeNanos: UInt64 = 0
        var workerCodecNanos: UInt64 = 0
        var sentBytes = 0
        var receivedBytes = 0
        /// When the request was handed to the socket and when it failed (monotonic ns; 0 = not yet).
        var sentAt: UInt64 = 0
        var failedAt: UInt64 = 0
        var error: Error?
        // A dedicated thread per worker: GCD's pool has one thread per core, so blocking I/O on it would
        // serialise workers beyond the core count.
        private let dispatch = DispatchThread()

        init(index: Int, entry: HostEntry) {
            self.index = index; self.entry = entry
        }

        /// Runs `body` on this worker's thread; pair with `wait()` or `tryWait()`.
        func start(_ body: @escaping () -> Void) { dispatch.start(body) }
        func wait() { dispatch.wait() }
        /// Whether the job started last has finished (then it counts as waited for).
        func tryWait() -> Bool { dispatch.tryWait() }
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

        func tryWait() -> Bool { done.wait(timeout: .now()) == .success }

        /// Ends the thread (if any) after its current job.
        func stop() {
            guard running else { return }
            running = false
            job = nil
            go.signal()
        }
    }

    /// Set by `close()`; a reconnect finishing afterwards closes its new connection itself.
    final class ClosedFlag: @unchecked Sendable {
        private let lock = NSLock()
        private var closed = false
        func set() { lock.lock(); closed = true; lock.unlock() }
        var isSet: Bool { lock.lock(); defer { lock.unlock() }; return closed }
    }

    public let hosts: HostsFile
    public let options: ClusterOptions
    public let expertCount: Int
    public private(set) var timing = ClusterTiming()
    let remotes: [Remote]
    /// owners[e] = indices into `remotes` of the workers that load expert e.
    let owners: [[Int]]
    private var splitter: RowSplitter
    private var aliveFlags: [Bool]
    private var assigned: [[RowPiece]]
    private var pending: [RowPiece] = []
    private let closedFlag = ClosedFlag()

    /// Connects to every worker in `hosts`. Refuses to start when a worker answers but fails the handshake
    /// (secret, protocol version, model) or loads other experts than `hosts` lists for it, and when an expert has
    /// no reachable worker; a worker that cannot be reached while every expert has another one is marked dead
    /// (see `deadWorkers`) and reconnected later.
    public init(hosts: HostsFile, expertCount: Int, options: ClusterOptions) throws {
        try hosts.validate(expertCount: expertCount)
        self.hosts = hosts
        self.options = options
        self.expertCount = expertCount
        let remotes = hosts.entries.enumerated().map { Remote(index: $0, entry: $1) }
        owners = (0..<expertCount).map { e in remotes.indices.filter { remotes[$0].entry.experts.contains(e) } }
        var unreachable: [Int: ClusterError] = [:]
        for r in remotes {
            do {
                (r.conn, r.welcome) = try Self.connect(r.entry, hosts: hosts, options: options)
            } catch let f as ConnectFailure where f.unreachable {
                unreachable[r.index] = f.error
            } catch {
                remotes.forEach { $0.conn?.close() }
                throw (error as? ConnectFailure)?.error ?? error
            }
        }
        for e in 0..<expertCount where !owners[e].contains(where: { remotes[$0].alive }) {
            remotes.forEach { $0.conn?.close() }
            throw unreachable[owners[e][0]]!
        }
        self.remotes = remotes
        splitter = RowSplitter(owners: owners, workers: remotes.count, minimumPiece: options.minimumSplitRows)
        aliveFlags = remotes.map(\.alive)
        assigned = [[RowPiece]](repeating: [], count: remotes.count)
        for (i, e) in unreachable.sorted(by: { $0.key < $1.key }) { markDead(remotes[i], e) }
    }

    /// A failed connect: `unreachable` when the worker is not there now (refused, reset, timed out), false when
    /// it answered but is wrong (secret, protocol version, model, experts).
    struct ConnectFailure: Error, CustomStringConvertible {
        let error: ClusterError
        let unreachable: Bool
        var description: String { error.description }
    }

    /// Connects to one worker, authenticates, and checks that it loads the experts `hosts` lists for it.
    static func connect(_ entry: HostEntry, hosts: HostsFile, options: ClusterOptions) throws -> (WireConnection, Welcome) {
        do {
            let conn = try WireConnection.connect(host: entry.address, port: entry.port,
                                                  timeout: options.connectTimeout, limits: options.limits)
            let w: Welcome
            do {
                w = try Handshake.client(conn, secret: options.secret, fingerprint: options.fingerprint,
                                         peerName: options.name, timeout: options.connectTimeout)
            } catch {
                conn.close()
                throw error
            }
            let loaded = Set(w.experts.map(Int.init))
            let missing = entry.experts.filter { !loaded.contains($0) }
            guard missing.isEmpty else {
                conn.close()
                throw ConnectFailure(error: .disagreement("worker \(entry.name) (\(hosts.path):\(entry.line)) is listed with experts \(formatExpertList(entry.experts)) but loads \(formatExpertList(Array(loaded)))"), unreachable: false)
            }
            return (conn, w)
        } catch let f as ConnectFailure {
            throw f
        } catch {
            let wrong: Bool
            switch error as? WireError {
            case .authFailed?, .fingerprintMismatch?, .unsupportedVersion?: wrong = true
            case let .peer(code, _)?:
                wrong = [WireErrorCode.authFailed, .fingerprintMismatch, .unsupportedVersion].map(\.rawValue).contains(code)
            default: wrong = false
            }
            throw ConnectFailure(error: .connectFailed(worker: entry.name, endpoint: entry.endpoint, reason: "\(error)"),
                                 unreachable: !wrong)
        }
    }

    deinit { close() }

    public func close() {
        closedFlag.set()
        for r in remotes {
            r.conn?.close()
            // A reconnect still running closes its own connection when it sees the flag; its thread then ends.
            r.stopThread()
        }
    }

    /// Worker names and what they reported in WELCOME (`.unbound` for a worker never reached).
    public var workers: [(name: String, endpoint: String, numa: NUMAReport, alive: Bool)] {
        remotes.map { ($0.entry.name, $0.entry.endpoint, $0.welcome?.numa ?? .unbound, $0.alive) }
    }

    /// Workers currently marked dead, why, and when (seconds from now) the next reconnect attempt is due
    /// (0 while one is running).
    public var deadWorkers: [(name: String, endpoint: String, reason: String, retryIn: Double)] {
        let now = monotonicNanos()
        return remotes.filter { !$0.alive }.map {
            ($0.entry.name, $0.entry.endpoint, $0.failure, $0.retryAt > now ? Double($0.retryAt - now) * 1e-9 : 0)
        }
    }

    /// Marks `r` dead after `error` and schedules its next reconnect attempt.
    func markDead(_ r: Remote, _ error: Error) {
        r.failure = "\(error)"
        r.conn?.close()
        r.conn = nil
        r.backoff = r.backoff == 0 ? options.reconnectBackoff : min(2 * r.backoff, options.maxReconnectBackoff)
        r.retryAt = monotonicNanos() &+ UInt64(max(0, r.backoff) * 1e9)
    }

    /// Collects finished reconnects and starts one for every dead worker whose back-off has passed. Never blocks:
    /// the handshake runs on the worker's own thread.
    func pollReconnects() {
        let now = monotonicNanos()
        for r in remotes where !r.alive {
            if r.reconnecting {
                guard r.tryWait() else { continue }
                r.reconnecting = false
                switch r.reconnectResult {
                case let .success((conn, welcome))?:
                    r.conn = conn; r.welcome = welcome; r.failure = ""
                    timing.reconnects += 1
                case let .failure(error)?: markDead(r, error)
                case nil: break
                }
                r.reconnectResult = nil
            } else if now >= r.retryAt {
                r.reconnecting = true
                let (hosts, options, closed) = (self.hosts, self.options, closedFlag)
                r.start {
                    let result = Result { try Self.connect(r.entry, hosts: hosts, options: options) }
                    if closed.isSet, case let .success((conn, _)) = result { conn.close() }
                    r.reconnectResult = result
                }
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

    /// The deadline (s) of `r`'s request this round: short when every piece's expert has another live owner.
    func deadline(for r: Remote) -> Double {
        for p in r.pieces where !owners[p.expert].contains(where: { $0 != r.index && remotes[$0].alive }) {
            return options.requestTimeout
        }
        let usual = options.failoverRoundTrips * r.recentRoundTripNanos * 1e-9
        return min(options.requestTimeout, max(options.failoverTimeout, usual))
    }

    public func execute(_ s: ExpertShards) throws {
        let t0 = monotonicNanos()
        if remotes.contains(where: { !$0.alive }) { pollReconnects() }
        pending.removeAll(keepingCapacity: true)
        for e in 0..<s.expertCount where s.rowCount(expert: e) > 0 {
            pending.append(RowPiece(expert: e, lo: s.offsets[e], count: s.rowCount(expert: e)))
        }
        var criticalRemote: Remote?
        var criticalEnd: UInt64 = 0
        var attempts = 0
        while !pending.isEmpty {
            attempts += 1
            for r in remotes { aliveFlags[r.index] = r.alive }
            let ownerless = splitter.split(pending, alive: aliveFlags, into: &assigned)
            if let e = ownerless.first {
                let dead = remotes[owners[e][0]]
                throw ClusterError.workerFailed(worker: dead.entry.name, endpoint: dead.entry.endpoint,
                                                reason: dead.failure.isEmpty ? "no live worker hosts it" : dead.failure,
                                                experts: ownerless)
            }
            if attempts == 1 {
                // Experts whose rows went to two or more workers.
                for e in 0..<s.expertCount {
                    var holders = 0
                    for w in 0..<remotes.count where assigned[w].contains(where: { $0.expert == e }) { holders += 1 }
                    if holders > 1 { timing.splitExperts += 1 }
                }
            }
            for r in remotes {
                swap(&r.pieces, &assigned[r.index])
                if r.pieces.isEmpty { continue }
                r.deadline = deadline(for: r)
                r.start { [unowned self] in
                    do { try self.run(r, s) } catch { r.error = error; r.failedAt = monotonicNanos() }
                }
            }
            for r in remotes where !r.pieces.isEmpty { r.wait() }
            pending.removeAll(keepingCapacity: true)
            for r in remotes where !r.pieces.isEmpty {
                if let e = r.error {
                    let rows = r.pieces.reduce(0) { $0 + $1.count }
                    if timing.failovers.count < ClusterTiming.maxFailoversKept {
                        let after = r.sentAt > 0 && r.failedAt > r.sentAt ? Double(r.failedAt - r.sentAt) * 1e-9 : 0
                        timing.failovers.append(Failover(worker: r.entry.name, endpoint: r.entry.endpoint, layer: s.layer,
                                                         rows: rows, after: after, reason: "\(e)"))
                    }
                    markDead(r, e)
                    pending += r.pieces
                    r.error = nil
                    timing.retries += 1
                } else {
                    r.backoff = 0
                    timing.bytesSent &+= UInt64(r.sentBytes)
                    timing.bytesReceived &+= UInt64(r.receivedBytes)
                    let rt = Double(r.roundTripNanos)
                    r.recentRoundTripNanos = r.recentRoundTripNanos == 0 ? rt : r.recentRoundTripNanos + 0.25 * (rt - r.recentRoundTripNanos)
                    let end = r.codecNanos + r.roundTripNanos
                    if end >= criticalEnd { criticalEnd = end; criticalRemote = r }
                }
                r.pieces.removeAll(keepingCapacity: true)
            }
            pending.sort { $0.lo < $1.lo }
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

    /// One worker's share of a layer: gather (unless its pieces are one contiguous block), encode, send, receive,
    /// decode, scatter (unless contiguous: then decoded straight into `s.output`).
    func run(_ r: Remote, _ s: ExpertShards) throws {
        guard let conn = r.conn else { throw ClusterError.disagreement("worker \(r.entry.name) has no connection") }
        let d = s.dim
        let tc0 = monotonicNanos()
        r.sentAt = 0
        r.groups.removeAll(keepingCapacity: true)
        var rows = 0
        var contiguous = true
        for p in r.pieces {
            if p.lo != r.pieces[0].lo + rows { contiguous = false }
            r.groups.append(ExpertGroup(expert: UInt32(p.expert), rows: UInt32(p.count)))
            rows += p.count
        }
        let first = r.pieces[0].lo
        if !contiguous {
            if r.input.count < rows * d { r.input = [Float](repeating: 0, count: rows * d); r.output = r.input }
            if r.gate.count < rows { r.gate = [Float](repeating: 0, count: rows) }
            var at = 0
            r.input.withUnsafeMutableBufferPointer { inp in
                r.gate.withUnsafeMutableBufferPointer { g in
                    for p in r.pieces {
                        (inp.baseAddress! + at * d).update(from: s.input + p.lo * d, count: p.count * d)
                        (g.baseAddress! + at).update(from: s.gateWeights + p.lo, count: p.count)
                        at += p.count
                    }
                }
            }
        }
        let requestID = r.nextRequest
        r.nextRequest += 1
        let codecOptions = options.codec
        func encode(_ inp: UnsafePointer<Float>, _ g: UnsafePointer<Float>) throws {
            try Frame.encode(into: conn.sendBuffer, type: .expert, requestID: requestID, checksum: conn.payloadChecksums) { b in
                try ExpertMessage.encodeRequest(into: b, layer: s.layer, dim: d, groups: r.groups, activations: inp,
                                                gate: g, codec: r.codec, options: codecOptions)
            }
        }
        if contiguous {
            try encode(s.input + first * d, s.gateWeights + first)
        } else {
            try r.input.withUnsafeBufferPointer { inp in
                try r.gate.withUnsafeBufferPointer { g in try encode(inp.baseAddress!, g.baseAddress!) }
            }
        }
        let tc1 = monotonicNanos()
        r.sentAt = tc1
        let sentBytes = conn.sendBuffer.count
        try conn.sendBuffered(timeout: r.deadline)
        let left = r.deadline - Double(monotonicNanos() - tc1) * 1e-9
        guard left > 0 else { throw WireError.timeout("no EXPERT_RESULT from \(r.entry.name) within \(r.deadline) s") }
        let frame = try conn.receive(timeout: left)
        let tr = monotonicNanos()
        try frame.throwIfError()
        guard frame.header.type == .expertResult else {
            throw WireError.unexpectedMessage(got: "\(frame.header.type)", expected: "EXPERT_RESULT")
        }
        guard frame.header.requestID == requestID else {
            throw WireError.malformed(field: "requestID", reason: "\(frame.header.requestID), expected \(requestID)")
        }
        let result = try ExpertMessage.decodeResult(frame.payload, groups: &r.resultGroups, limits: conn.limits)
        guard result.layer == s.layer, result.dim == d, r.resultGroups == r.groups else {
            throw WireError.malformed(field: "expertResult.groups", reason: "the result does not match the request")
        }
        if contiguous {
            try r.codec.decode(result.output, into: s.output + first * d)
        } else {
            try r.output.withUnsafeMutableBufferPointer { out in
                try r.codec.decode(result.output, into: out.baseAddress!)
                var at = 0
                for p in r.pieces {
                    (s.output + p.lo * d).update(from: out.baseAddress! + at * d, count: p.count * d)
                    at += p.count
                }
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
        try remotes.compactMap(\.conn).map { conn in
            try conn.send(StatsRequest(), requestID: 0, timeout: timeout)
            return try conn.receive(timeout: timeout).decode(StatsReply.self)
        }
    }
}
