import ArgumentParser
import DiT
import Foundation
import Tensor
import Wire

/// Hammers a running worker with valid requests, malformed frames and connection churn, sampling its RSS.
struct SoakBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Load a worker with valid and malformed traffic and connection churn; print its RSS trend.",
        discussion: """
        Runs against a worker started separately (bench/soak.sh starts one): --clients threads send authenticated
        EXPERT/PING/STATS traffic and reconnect every few hundred requests, --attackers threads send malformed
        traffic (garbage, oversize and unknown headers, corrupted checksums, re-sealed mutated EXPERT payloads,
        decompression bombs, foreign experts, frames cut off mid-way, idle handshakes) and expect an ERROR or a
        closed connection each time. Every --sample-every seconds while the traffic runs it prints the worker's RSS,
        its anonymous part and its thread count (/proc/PID/status VmRSS, RssAnon, Threads: file-backed pages of code
        and libraries come and go with the page cache, so RssAnon is the quantity judged) and the traffic so far; at
        the end, for both, the samples after --warmup seconds: first, last, min, max, spread and the least-squares
        slope, how much of RssAnon follows the thread count (one thread per open authenticated connection), and
        RssAnon once the traffic has stopped. Exits non-zero if a valid request failed or the worker died.
        """)

    @Option(help: "Worker address.") var host = "127.0.0.1"
    @Option(help: "Worker port.") var port: Int
    @Option(name: .customLong("secret-file"), help: "The worker's secret file.") var secretFile: String
    @Option(name: .customLong("worker-pid"), help: "Worker process id (for its RSS).") var workerPID: Int32
    @Option(help: "Model config the worker serves (for the hidden size).") var config = "DiT-MoE-S/2-8E2A"
    @Option(help: "Seconds to run.") var duration = 600.0
    @Option(help: "Seconds excluded from the trend at the start.") var warmup = 60.0
    @Option(name: .customLong("sample-every"), help: "Seconds between RSS samples.") var sampleEvery = 5.0
    @Option(help: "Threads sending valid traffic.") var clients = 2
    @Option(help: "Threads sending malformed traffic.") var attackers = 2

    final class Counters: @unchecked Sendable {
        let lock = NSLock()
        var validFrames = 0, malformedFrames = 0, connections = 0, refusals = 0, failures: [String] = []
        func add(valid: Int = 0, malformed: Int = 0, connections c: Int = 0, refusals r: Int = 0) {
            lock.lock(); validFrames += valid; malformedFrames += malformed; connections += c; refusals += r; lock.unlock()
        }
        func fail(_ s: String) { lock.lock(); if failures.count < 20 { failures.append(s) }; lock.unlock() }
        var snapshot: (Int, Int, Int, Int, Int) {
            lock.lock(); defer { lock.unlock() }
            return (validFrames, malformedFrames, connections, refusals, failures.count)
        }
    }

    func run() throws {
        let cfg = try DiTConfig.resolve(config)
        let secret = try WireSecret(contentsOf: secretFile)
        let counters = Counters()
        let end = monotonicNanos() &+ UInt64(duration * 1e9)
        let probe = try WireConnection.connect(host: host, port: port)
        let welcome = try Handshake.client(probe, secret: secret, fingerprint: .none, peerName: "soak-probe")
        probe.close()
        let experts = welcome.experts.map { UInt32($0) }
        guard !experts.isEmpty else { throw ValidationError("the worker hosts no experts") }
        let dim = cfg.hiddenSize
        let fp = welcome.fingerprint
        var threads: [Thread] = []
        for i in 0..<clients {
            let t = Thread { [self] in
                var rng = SplitMix64(seed: UInt64(1000 + i))
                while monotonicNanos() < end {
                    do { try validSession(secret: secret, fingerprint: fp, dim: dim, experts: experts, end: end, rng: &rng, counters: counters) } catch {
                        counters.fail("valid session: \(error)")
                        Thread.sleep(forTimeInterval: 0.1)
                    }
                }
            }
            t.start(); threads.append(t)
        }
        for i in 0..<attackers {
            let t = Thread { [self] in
                var rng = SplitMix64(seed: UInt64(2000 + i))
                while monotonicNanos() < end {
                    attack(secret: secret, fingerprint: fp, dim: dim, experts: experts, rng: &rng, counters: counters)
                }
            }
            t.start(); threads.append(t)
        }
        var samples: [(t: Double, rss: Double, anon: Double, threads: Int)] = []
        let t0 = monotonicNanos()
        print("soak: worker pid \(workerPID) at \(host):\(port), \(cfg.name) experts \(experts.count), \(clients) clients, "
              + "\(attackers) attackers, \(Int(duration)) s, warm-up \(Int(warmup)) s")
        print("    t_s   rss_MB  anon_MB  threads  valid_frames  malformed_frames  connections  refused  failures")
        while true {
            let now = monotonicNanos()
            let t = Double(now - t0) / 1e9
            guard let rss = Self.statusMB(pid: workerPID, "VmRSS:"), let anon = Self.statusMB(pid: workerPID, "RssAnon:"),
                  let workerThreads = Self.statusValue(pid: workerPID, "Threads:") else {
                counters.fail("worker \(workerPID) is gone at t=\(t) s")
                break
            }
            samples.append((t, rss, anon, Int(workerThreads)))
            let (v, m, c, r, f) = counters.snapshot
            print(String(format: "%7.1f %8.2f %8.2f %8d %13d %17d %12d %8d %9d", t, rss, anon, Int(workerThreads), v, m, c, r, f))
            fflush(stdout)
            // Every sample is taken while the traffic runs: the last one a whole interval before it stops (a
            // sample at the very end would catch the connections closing).
            if Double(end &- min(end, monotonicNanos())) / 1e9 <= sampleEvery { break }
            Thread.sleep(forTimeInterval: sampleEvery)
        }
        while threads.contains(where: { !$0.isFinished }) { Thread.sleep(forTimeInterval: 0.05) }
        let steady = samples.filter { $0.t >= warmup }
        if steady.count >= 2 {
            print(Self.trend("RSS", steady.map { ($0.t, $0.rss) }, warmup: warmup, judged: false))
            print(Self.trend("RssAnon", steady.map { ($0.t, $0.anon) }, warmup: warmup, judged: true))
            print("judged on RssAnon, the worker's own memory: VmRSS adds file-backed pages (code, libraries) that the kernel maps in and out")
            print(Self.threadDependence(steady.map { (Double($0.threads), $0.anon) }))
        }
        // Once the traffic has stopped and every connection closed: what the worker keeps.
        Thread.sleep(forTimeInterval: 2)
        if let anon = Self.statusMB(pid: workerPID, "RssAnon:"), let last = steady.last {
            print(String(format: "RssAnon 2 s after the traffic stopped: %.2f MB (%+.2f MB against the last sample under load)", anon, anon - last.anon))
        }
        let (v, m, c, r, f) = counters.snapshot
        print("totals: \(v) valid frames, \(m) malformed frames, \(c) connections, \(r) refused, \(f) failures")
        for s in counters.failures { print("failure: \(s)") }
        if f > 0 { throw ExitCode(1) }
    }

    /// First, last, min, max, spread and least-squares slope of (seconds, MB) samples; `judged`: with the verdict
    /// against the 1 MB target.
    static func trend(_ name: String, _ s: [(t: Double, mb: Double)], warmup: Double, judged: Bool) -> String {
        let n = Double(s.count)
        let mt = s.map(\.t).reduce(0, +) / n, mm = s.map(\.mb).reduce(0, +) / n
        let num = s.reduce(0.0) { $0 + ($1.t - mt) * ($1.mb - mm) }
        let den = s.reduce(0.0) { $0 + ($1.t - mt) * ($1.t - mt) }
        let slope = den > 0 ? num / den * 60 : 0
        let v = s.map(\.mb)
        let spread = v.max()! - v.min()!
        return String(format: "%@ trend after %.0f s (%d samples): first %.2f MB, last %.2f MB, min %.2f, max %.2f, spread %.2f MB, slope %+.3f MB/min%@",
                      name, warmup, s.count, v.first!, v.last!, v.min()!, v.max()!, spread, slope,
                      judged ? (spread <= 1.0 ? " — flat within 1 MB" : " — NOT flat within 1 MB") : "")
    }

    /// How much of RssAnon's variation follows the worker's thread count (one thread per open authenticated
    /// connection, plus a fixed few): the least-squares MB per thread and the correlation. Memory that follows the
    /// connections open at the sampling instant is in use, not leaked.
    static func threadDependence(_ s: [(threads: Double, mb: Double)]) -> String {
        let n = Double(s.count)
        let mx = s.map(\.threads).reduce(0, +) / n, my = s.map(\.mb).reduce(0, +) / n
        let sxy = s.reduce(0.0) { $0 + ($1.threads - mx) * ($1.mb - my) }
        let sxx = s.reduce(0.0) { $0 + ($1.threads - mx) * ($1.threads - mx) }
        let syy = s.reduce(0.0) { $0 + ($1.mb - my) * ($1.mb - my) }
        let threads = s.map(\.threads)
        guard sxx > 0, syy > 0 else {
            return String(format: "RssAnon against worker threads (%.0f–%.0f): no variation to attribute", threads.min()!, threads.max()!)
        }
        return String(format: "RssAnon against worker threads (%.0f–%.0f over the samples): %+.3f MB per thread, correlation %.2f",
                      threads.min()!, threads.max()!, sxy / sxx, sxy / (sxx * syy).squareRoot())
    }

    /// A `/proc/PID/status` field in MB (`VmRSS:`, `RssAnon:`, given there in kB); nil once the process is gone.
    static func statusMB(pid: Int32, _ field: String) -> Double? {
        statusValue(pid: pid, field).map { $0 / 1024 }
    }

    /// The first number of a `/proc/PID/status` line (`Threads:`, or kB for the memory fields); nil once the
    /// process is gone.
    static func statusValue(pid: Int32, _ field: String) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix(field) }) else { return nil }
        return Double(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "")
    }

    /// One authenticated connection: 50–400 requests (EXPERT with 1–3 hosted experts, PING, sometimes STATS),
    /// each answer checked, then a close (sometimes in the middle of a frame).
    func validSession(secret: WireSecret, fingerprint: ModelFingerprint, dim: Int, experts: [UInt32], end: UInt64,
                      rng: inout SplitMix64, counters: Counters) throws {
        let c = try WireConnection.connect(host: host, port: port)
        _ = try Handshake.client(c, secret: secret, fingerprint: fingerprint, peerName: "soak")
        counters.add(connections: 1)
        let codec = ShardCodec()
        var groups: [ExpertGroup] = [], back: [ExpertGroup] = []
        let maxRows = 48
        let input = (0..<(maxRows * dim)).map { Float(($0 * 7919) % 1000) * 1e-3 - 0.5 }
        let gate = [Float](repeating: 0.5, count: maxRows)
        var output = [Float](repeating: 0, count: maxRows * dim)
        let options: [ShardOptions] = [.raw, .default, ShardOptions(dtype: .bf16, shuffle: true, compression: .lz4)]
        let requests = 50 + Int(rng.next() % 350)
        for i in 0..<requests where monotonicNanos() < end {
            let id = UInt64(i + 1)
            switch rng.next() % 10 {
            case 0:
                try c.send(Ping(data: [UInt8](repeating: UInt8(i & 0xFF), count: Int(rng.next() % 65536))), requestID: id)
                let f = try c.receive(timeout: 30)
                _ = try f.decode(Pong.self)
            case 1:
                try c.send(StatsRequest(), requestID: id)
                _ = try c.receive(timeout: 30).decode(StatsReply.self)
            default:
                groups.removeAll(keepingCapacity: true)
                var rows = 0
                var pool = experts
                for _ in 0..<(1 + Int(rng.next() % 3)) where !pool.isEmpty {
                    let e = pool.remove(at: Int(rng.next() % UInt64(pool.count)))
                    let n = Int(rng.next() % 17)
                    groups.append(ExpertGroup(expert: e, rows: UInt32(n))); rows += n
                }
                groups.sort { $0.expert < $1.expert }
                let opt = options[Int(rng.next() % UInt64(options.count))]
                try c.send(.expert, requestID: id) { b in
                    try ExpertMessage.encodeRequest(into: b, layer: Int(rng.next() % 2), dim: dim, groups: groups,
                                                    activations: input, gate: gate, codec: codec, options: opt)
                }
                let f = try c.receive(timeout: 30)
                try f.throwIfError()
                guard f.header.type == .expertResult, f.header.requestID == id else {
                    throw WireError.unexpectedMessage(got: "\(f.header.type) #\(f.header.requestID)", expected: "EXPERT_RESULT #\(id)")
                }
                let r = try ExpertMessage.decodeResult(f.payload, groups: &back, limits: c.limits)
                guard back == groups else { throw WireError.malformed(field: "groups", reason: "result does not match") }
                try output.withUnsafeMutableBufferPointer { _ = try codec.decode(r.output, into: $0.baseAddress!) }
            }
            counters.add(valid: 2)
        }
        if rng.next() % 4 == 0 {   // leave mid-frame
            let junk = try frame(.ping, Array(repeating: 1, count: 1000))
            _ = junk.withUnsafeBytes { send(c.fd, $0.baseAddress!, 500, Int32(MSG_NOSIGNAL)) }
        }
        c.close()
    }

    func frame(_ type: MessageType, _ payload: [UInt8], requestID: UInt64 = 1) throws -> [UInt8] {
        let b = WireBuffer()
        try Frame.encode(into: b, type: type, requestID: requestID) { $0.append(bytes: payload) }
        return Array(b.bytes)
    }

    /// One malformed exchange on a fresh connection; the worker must answer ERROR or close, within 30 s.
    func attack(secret: WireSecret, fingerprint: ModelFingerprint, dim: Int, experts: [UInt32], rng: inout SplitMix64,
                counters: Counters) {
        guard let c = try? WireConnection.connect(host: host, port: port) else {
            counters.fail("connect failed"); Thread.sleep(forTimeInterval: 0.1); return
        }
        counters.add(connections: 1)
        defer { c.close() }
        func raw(_ bytes: [UInt8], count: Int? = nil) {
            _ = bytes.withUnsafeBytes { send(c.fd, $0.baseAddress!, count ?? $0.count, Int32(MSG_NOSIGNAL)) }
            counters.add(malformed: 1)
        }
        /// Reads until ERROR or close; an unexpected success is a failure.
        func expectRefusal(_ what: String, resultAllowed: Bool = false) {
            do {
                let f = try c.receive(timeout: 30)
                if f.header.type != .error && !(resultAllowed && f.header.type == .expertResult) {
                    counters.fail("\(what): got \(f.header.type)")
                }
                if let e = try? f.decode(ErrorMessage.self), e.code == WireErrorCode.tooManyConnections.rawValue {
                    counters.add(refusals: 1)
                }
            } catch WireError.closed {
            } catch WireError.timeout(let s) {
                counters.fail("\(what): no answer (\(s))")
            } catch {}
        }
        let kind = rng.next() % 9
        do {
            switch kind {
            case 0:   // garbage before the handshake (at least a header's worth: shorter waits out the handshake deadline)
                raw((0..<(Frame.headerSize + Int(rng.next() % 200))).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
                expectRefusal("garbage")
            case 1:   // a header announcing a huge HELLO
                var h = [UInt8](repeating: 0, count: Frame.headerSize)
                h.withUnsafeMutableBytes {
                    Frame.writeHeader(to: $0.baseAddress!, rawType: 1, version: Frame.version, flags: 0, requestID: 0,
                                      payloadLength: UInt32.max, payloadChecksum: 0)
                }
                raw(h); expectRefusal("oversize")
            case 2:   // a valid frame of a type not allowed before AUTH
                raw(try frame(.expert, (0..<64).map { UInt8($0) })); expectRefusal("expert before auth")
            case 3:   // idle, then leave without a word
                Thread.sleep(forTimeInterval: Double(rng.next() % 200) / 1000)
            default:
                _ = try Handshake.client(c, secret: secret, fingerprint: fingerprint, peerName: "soak-attacker")
                let b = WireBuffer()
                let rows = 1 + Int(rng.next() % 8)
                let values = [Float](repeating: 0.25, count: rows * dim)
                try Frame.encode(into: b, type: .expert, requestID: 7) { w in
                    try ExpertMessage.encodeRequest(into: w, layer: 0, dim: dim, groups: [ExpertGroup(expert: experts[0], rows: UInt32(rows))],
                                                    activations: values, gate: values, codec: ShardCodec(), options: .default)
                }
                var bytes = Array(b.bytes)
                switch kind {
                case 4:   // one flipped bit anywhere: a checksum catches it
                    let i = Int(rng.next() % UInt64(bytes.count))
                    bytes[i] ^= UInt8(1) << (rng.next() % 8)
                    raw(bytes)
                case 5:   // payload mutated, then re-sealed so the message decoder sees it
                    var payload = Array(bytes[Frame.headerSize...])
                    for _ in 0..<(1 + Int(rng.next() % 4)) {
                        payload[Int(rng.next() % UInt64(payload.count))] = UInt8(truncatingIfNeeded: rng.next())
                    }
                    raw(try frame(.expert, payload, requestID: 7))
                case 6:   // a bomb: 2^20 rows declared in a tiny LZ4 shard
                    let w = WireBuffer()
                    w.append(UInt32(0)); w.append(UInt32(dim)); w.append(UInt32(1)); w.append(experts[0]); w.append(UInt32(1 << 20))
                    w.append(UInt8(0)); w.append(UInt8(0)); w.append(UInt8(1)); w.append(UInt8(0))
                    w.append(UInt32((1 << 20) * dim)); w.append(UInt32(16)); w.append(bytes: [UInt8](repeating: 0, count: 16))
                    raw(try frame(.expert, Array(w.bytes), requestID: 7))
                case 7:   // half a frame, then leave
                    raw(bytes, count: bytes.count / 2)
                    return
                default:  // an expert this worker does not host
                    let w = WireBuffer()
                    try ExpertMessage.encodeRequest(into: w, layer: 0, dim: dim, groups: [ExpertGroup(expert: 1 << 20, rows: 1)],
                                                    activations: values, gate: values, codec: ShardCodec(), options: .raw)
                    raw(try frame(.expert, Array(w.bytes), requestID: 7))
                }
                expectRefusal("attack \(kind)", resultAllowed: kind == 5)
            }
        } catch WireError.peer(let code, _) where code == WireErrorCode.tooManyConnections.rawValue {
            counters.add(refusals: 1)
        } catch {
            counters.fail("attack \(kind): \(error)")
        }
    }
}

