import ArgumentParser
import DiT
import Foundation
import Metrics
import Tensor
import Wire

// Benchmarks of the wire layer: the shard codec beside memcpy, and frame round trips beside a raw-TCP ping-pong,
// each baseline measured in the same run (on these VMs loopback latency is mostly vCPU wake-up, so the raw-socket floor is measured in the same run).

/// Where codec benchmark shards come from.
enum ShardSourceKind: String, ExpressibleByArgument, CaseIterable {
    case synthetic, engine
}

/// One shard to encode: a name (e.g. "layer 3") and row-major floats.
struct BenchShard {
    var name: String
    var values: [Float]
}

enum BenchShards {
    /// `count` standard-normal floats (Box–Muller on a fixed seed).
    static func synthetic(count: Int, seed: UInt64 = 1) -> [BenchShard] {
        var s = seed
        func next() -> Double {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
        }
        var v = [Float](repeating: 0, count: count)
        for i in 0..<count { v[i] = Float(sqrt(-2 * log(max(next(), 1e-300))) * cos(2 * .pi * next())) }
        return [BenchShard(name: "normal", values: v)]
    }

    /// The routed-expert input shards of every MoE layer of one forward (what the coordinator would send).
    static func engine(config name: String, weights: String?, batch: Int) throws -> [BenchShard] {
        let config = try DiTConfig.resolve(name)
        let model = try DiTModel(config: config, source: weights.map { .safetensors(path: $0) } ?? .random(seed: 1))
        let recorder = ShardRecorder(inner: model.executor)
        model.executor = recorder
        let image = config.inChannels * config.inputSize * config.inputSize
        var s: UInt64 = 3
        let x = (0..<(batch * image)).map { _ -> Float in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s >> 11) % 2000) / 1000 - 1
        }
        let t = [Float](repeating: 500, count: batch)
        let y = (0..<batch).map { Int32($0 % config.numClasses) }
        var out = [Float](repeating: 0, count: batch * config.outChannels * config.inputSize * config.inputSize)
        try model.forward(x: x, t: t, y: y, batch: batch, out: &out)
        return recorder.shards
    }
}

/// Wraps an executor and keeps a copy of every layer's input and output shards.
final class ShardRecorder: ExpertExecutor {
    let inner: ExpertExecutor
    var shards: [BenchShard] = []
    init(inner: ExpertExecutor) { self.inner = inner }
    func execute(_ s: ExpertShards) throws {
        let n = s.offsets[s.expertCount] * s.dim
        shards.append(BenchShard(name: "layer \(s.layer) in", values: Array(UnsafeBufferPointer(start: s.input, count: n))))
        try inner.execute(s)
        shards.append(BenchShard(name: "layer \(s.layer) out", values: Array(UnsafeBufferPointer(start: s.output, count: n))))
    }
}

struct CodecBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codec",
        abstract: "Shard codec MB/s and ratio for F32/BF16/F16 × shuffle × LZ4, beside memcpy and the checksums.",
        discussion: """
        Speeds are in MB/s of F32 input (10^6 bytes of the original floats per second), medians over --iterations. \
        Ratio = stored bytes / F32 bytes, so a cast alone gives 0.5. For BF16, two more decode rates: `to-bf16` \
        decodes to BF16 bits (what a BF16 worker now feeds its GEMMs) and `widen+round` decodes to FP32 and rounds \
        back to BF16 as a BF16 GEMM input (the worker's old path for shuffled/LZ4 BF16 shards), in the same run. \
        `--source engine` captures the routed-expert \
        input and output shards of every MoE layer of one forward of --config (seeded random weights unless \
        --weights), and also prints the LZ4 ratio per layer.
        """)

    @Option(help: "Shard source: synthetic (standard normal floats) or engine (a DiT-MoE forward's shards).")
    var source: ShardSourceKind = .synthetic

    @Option(help: "Floats per synthetic shard.")
    var count = 1 << 20

    @Option(help: "Model config for --source engine.")
    var config = "DiT-MoE-S/2-8E2A"

    @Option(help: "Weights (safetensors) for --source engine; seeded random weights without it.")
    var weights: String?

    @Option(help: "Batch size for --source engine.")
    var batch = 8

    @Option(help: "Timed repetitions per measurement (median reported).")
    var iterations = 7

    @Flag(help: "Print JSON lines.")
    var json = false

    func run() throws {
        BLASThreads.set(1)
        Parallel.threads = 1
        let shards = source == .synthetic ? BenchShards.synthetic(count: count)
                                          : try BenchShards.engine(config: config, weights: weights, batch: batch)
        let totalFloats = shards.reduce(0) { $0 + $1.values.count }
        let maxFloats = shards.map(\.values.count).max() ?? 0
        if !json {
            print("codec benchmark: \(shards.count) shard(s), \(totalFloats) floats (\(totalFloats * 4 / 1024) KiB F32), source \(source.rawValue)")
        }
        let dst = UnsafeMutableRawPointer.allocate(byteCount: maxFloats * 4, alignment: 64)
        defer { dst.deallocate() }

        // Baselines over the same bytes.
        func rate(_ body: () -> Void) -> Double {
            var times: [Double] = []
            for _ in 0..<iterations {
                let t0 = monotonicNanos(); body(); times.append(Double(monotonicNanos() - t0))
            }
            return Double(totalFloats * 4) / median(times) * 1e3   // MB/s
        }
        var sink: UInt64 = 0
        let memcpyRate = rate { for s in shards { s.values.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } } }
        let crcRate = rate { for s in shards { sink &+= UInt64(s.values.withUnsafeBytes { CRC32C.checksum($0) }) } }
        let portableRate = rate {
            for s in shards { sink &+= UInt64(s.values.withUnsafeBytes { CRC32C.portableChecksum($0) }) }
        }
        let sse42Rate = rate { for s in shards { sink &+= UInt64(s.values.withUnsafeBytes { CRC32C.sse42Checksum($0) }) } }
        if json {
            print(#"{"baseline":"memcpy","mbps":\#(memcpyRate)}"#)
            print(#"{"baseline":"crc32c","implementation":"\#(CRC32C.implementation)","mbps":\#(crcRate)}"#)
            print(#"{"baseline":"crc32c_sse42","mbps":\#(sse42Rate)}"#)
            print(#"{"baseline":"crc32c_portable","mbps":\#(portableRate)}"#)
        } else {
            print(String(format: "memcpy %8.0f MB/s   CRC32C (%@) %7.0f MB/s   SSE4.2 3-stream %7.0f MB/s   slicing-by-8 %6.0f MB/s   (checksum %llx)",
                         memcpyRate, CRC32C.implementation as NSString, crcRate, sse42Rate, portableRate, sink & 0xF))
            print("dtype  shuffle  lz4    encode MB/s  decode MB/s  ratio   to-bf16 MB/s  widen+round MB/s   (ratio of stored bytes to F32 bytes)")
        }

        let codec = ShardCodec()
        let buffer = WireBuffer(capacity: maxFloats * 4 + 4096)
        let out = UnsafeMutablePointer<Float>.allocate(capacity: maxFloats)
        let outBF16 = UnsafeMutablePointer<UInt16>.allocate(capacity: maxFloats)
        defer { out.deallocate(); outBF16.deallocate() }
        var perLayer: [(String, [String: Double])] = shards.map { ($0.name, [:]) }
        for dtype in ShardDType.allCases {
            for shuffle in [false, true] {
                for lz4 in [false, true] {
                    let options = ShardOptions(dtype: dtype, shuffle: shuffle, compression: lz4 ? .lz4 : .none)
                    var enc: [Double] = [], dec: [Double] = [], toBF16: [Double] = [], widenRound: [Double] = []
                    var stored = 0
                    for it in 0..<iterations {
                        var e = 0.0, d = 0.0, db = 0.0, dr = 0.0
                        stored = 0
                        for (si, s) in shards.enumerated() {
                            buffer.reset()
                            let t0 = monotonicNanos()
                            let info = try s.values.withUnsafeBufferPointer {
                                try codec.encode($0.baseAddress!, count: $0.count, options: options, into: buffer)
                            }
                            let t1 = monotonicNanos()
                            var r = WireReader(buffer.bytes)
                            let view = try ShardView.read(from: &r, expectedCount: s.values.count, field: "shard")
                            try codec.decode(view, into: out)
                            let t2 = monotonicNanos()
                            e += Double(t1 - t0); d += Double(t2 - t1)
                            if dtype == .bf16 {
                                let t3 = monotonicNanos()
                                try codec.decode(bf16: view, into: outBF16)
                                let t4 = monotonicNanos()
                                try codec.decode(view, into: out)
                                roundToBF16(out, rows: 1, cols: s.values.count, ld: s.values.count, into: outBF16)
                                db += Double(t4 - t3); dr += Double(monotonicNanos() - t4)
                            }
                            stored += info.storedBytes
                            if it == 0 && lz4 && shuffle {
                                perLayer[si].1[dtype.description] = Double(info.storedBytes) / Double(s.values.count * 4)
                            }
                            if it == 0 && dtype == .f32 {
                                // F32 must come back bit-exact.
                                for i in 0..<s.values.count where out[i].bitPattern != s.values[i].bitPattern {
                                    throw ValidationError("F32 round trip differs at \(i) in \(s.name)")
                                }
                            }
                        }
                        enc.append(e); dec.append(d); toBF16.append(db); widenRound.append(dr)
                    }
                    let bytes = Double(totalFloats * 4)
                    let encRate = bytes / median(enc) * 1e3, decRate = bytes / median(dec) * 1e3
                    let ratio = Double(stored) / bytes
                    // BF16 only: MB/s of F32-equivalent bytes decoded to BF16 bits, and decoded to FP32 then rounded.
                    let bf16Rate = dtype == .bf16 ? bytes / median(toBF16) * 1e3 : .nan
                    let roundRate = dtype == .bf16 ? bytes / median(widenRound) * 1e3 : .nan
                    if json {
                        let extra = dtype == .bf16 ? #","decode_to_bf16_mbps":\#(bf16Rate),"decode_widen_round_mbps":\#(roundRate)"# : ""
                        print(#"{"dtype":"\#(dtype)","shuffle":\#(shuffle),"lz4":\#(lz4),"encode_mbps":\#(encRate),"decode_mbps":\#(decRate),"ratio":\#(ratio),"memcpy_mbps":\#(memcpyRate)\#(extra)}"#)
                    } else {
                        let label = dtype.description.padding(toLength: 7, withPad: " ", startingAt: 0)
                            + (shuffle ? "on " : "off").padding(toLength: 9, withPad: " ", startingAt: 0)
                            + (lz4 ? "on " : "off").padding(toLength: 5, withPad: " ", startingAt: 0)
                        print(label + String(format: "  %11.0f  %11.0f  %6.3f", encRate, decRate, ratio)
                              + (dtype == .bf16 ? String(format: "  %12.0f  %16.0f", bf16Rate, roundRate) : ""))
                    }
                }
            }
        }
        if shards.count > 1 {
            if json {
                for (name, r) in perLayer {
                    print(#"{"shard":"\#(name)","ratio_shuffle_lz4":{"f32":\#(r["f32"] ?? .nan),"f16":\#(r["f16"] ?? .nan),"bf16":\#(r["bf16"] ?? .nan)}}"#)
                }
            } else {
                print("per shard, shuffle + LZ4, stored/F32 bytes:   f32     f16    bf16")
                for (name, r) in perLayer {
                    print("  " + name.padding(toLength: 42, withPad: " ", startingAt: 0)
                          + String(format: "%6.3f  %6.3f  %6.3f", r["f32"] ?? .nan, r["f16"] ?? .nan, r["bf16"] ?? .nan))
                }
            }
        }
    }
}

struct WireRoundTripBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wire-rtt",
        abstract: "Round-trip latency (p50/p99) and goodput by message size over loopback: Wire frames vs raw TCP.",
        discussion: """
        For each size, a client thread sends a message and a server thread echoes it back, --iterations times (at \
        least 20, sized to about 64 MiB per size), split into --rounds blocks in which the variants take turns. `raw` is a plain blocking TCP ping-pong of the same bytes with no \
        header or checksum; `wire` is a PING frame answered by a PONG frame through WireConnection (32-byte header, \
        CRC32C of the payload computed by the sender and verified by the receiver, both directions, payload sent \
        from the caller's memory); `wire-nock` is the same with the payload checksum omitted (flag bit 0). \
        Goodput = 2 × size / median round trip.
        """)

    @Option(parsing: .upToNextOption, help: "Message sizes in KiB.")
    var sizes: [Int] = [4, 16, 64, 256, 1024, 4096, 16384]

    @Option(help: "Round trips per size (0 = automatic).")
    var iterations = 0

    @Option(help: "Blocks per size in which raw, wire and no-checksum take turns (the round trips are split among them).")
    var rounds = 4

    @Flag(help: "Print JSON lines.")
    var json = false

    func run() throws {
        if !json {
            print("loopback round trips (client and server threads in one process; shared 2-vCPU machine)")
            print("size       raw p50 µs raw p99 µs  raw MB/s | wire p50 µs wire p99 µs wire MB/s wire/raw | no-checksum MB/s  /raw")
        }
        for kib in sizes {
            let size = kib * 1024
            let n = iterations > 0 ? iterations : max(20, min(2000, (64 << 20) / size))
            // The three variants alternate in `rounds` blocks so that load from other processes on a shared
            // machine falls on all of them alike; each list pools its blocks' round trips.
            var raw: [Double] = [], wire: [Double] = [], nock: [Double] = []
            let per = max(7, (n + rounds - 1) / rounds)
            for _ in 0..<rounds {
                raw += try pingPong(size: size, iterations: per, wire: false)
                wire += try pingPong(size: size, iterations: per, wire: true)
                nock += try pingPong(size: size, iterations: per, wire: true, checksum: false)
            }
            let rawGood = 2 * Double(size) / median(raw) * 1e3, wireGood = 2 * Double(size) / median(wire) * 1e3
            let nockGood = 2 * Double(size) / median(nock) * 1e3
            if json {
                print(#"{"size":\#(size),"iterations":\#(raw.count),"raw_p50_us":\#(median(raw) / 1e3),"raw_p99_us":\#(quantile(raw, 0.99) / 1e3),"raw_mbps":\#(rawGood),"wire_p50_us":\#(median(wire) / 1e3),"wire_p99_us":\#(quantile(wire, 0.99) / 1e3),"wire_mbps":\#(wireGood),"ratio":\#(wireGood / rawGood),"nochecksum_mbps":\#(nockGood),"nochecksum_ratio":\#(nockGood / rawGood)}"#)
            } else {
                print(String(format: "%-9@ %10.1f %10.1f %9.0f | %11.1f %11.1f %9.0f %7.1f%% | %16.0f %5.1f%%", "\(kib) KiB" as NSString,
                             median(raw) / 1e3, quantile(raw, 0.99) / 1e3, rawGood,
                             median(wire) / 1e3, quantile(wire, 0.99) / 1e3, wireGood, 100 * wireGood / rawGood,
                             nockGood, 100 * nockGood / rawGood))
            }
        }
    }

    /// Round-trip times in nanoseconds (after 3 warm-ups).
    func pingPong(size: Int, iterations: Int, wire: Bool, checksum: Bool = true) throws -> [Double] {
        let listener = try WireListener(host: "127.0.0.1", port: 0)
        let limits = WireLimits(maxPayload: max(size, 1 << 20), acceptUnchecksummed: !checksum)
        let total = iterations + 3
        let serverDone = DispatchSemaphore(value: 0)
        final class Box: @unchecked Sendable { var error: Error? }
        let box = Box()
        Thread.detachNewThread {
            defer { serverDone.signal() }
            do {
                guard let c = try listener.accept(timeout: 10, limits: limits) else { throw WireError.timeout("accept") }
                if wire {
                    c.payloadChecksums = checksum
                    for _ in 0..<total {
                        let f = try c.receive(timeout: 30)
                        try c.send(.pong, requestID: f.header.requestID, payload: f.payload, timeout: 30)
                    }
                } else {
                    let buf = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
                    defer { buf.deallocate() }
                    for _ in 0..<total {
                        try rawRecv(c.fd, buf, size)
                        try rawSend(c.fd, buf, size)
                    }
                }
            } catch { box.error = error }
        }
        let c = try WireConnection.connect(host: "127.0.0.1", port: listener.port, limits: limits)
        c.payloadChecksums = checksum
        let payload = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        defer { payload.deallocate() }
        for i in 0..<size { payload.storeBytes(of: UInt8(truncatingIfNeeded: i &* 131), toByteOffset: i, as: UInt8.self) }
        let src = UnsafeRawBufferPointer(start: payload, count: size)
        var times: [Double] = []
        times.reserveCapacity(total)
        for i in 0..<total {
            let t0 = monotonicNanos()
            if wire {
                try c.send(.ping, requestID: UInt64(i), payload: src, timeout: 30)
                let f = try c.receive(timeout: 30)
                guard f.header.type == .pong, f.payload.count == size else { throw WireError.codec("bad echo") }
            } else {
                try rawSend(c.fd, payload, size)
                try rawRecv(c.fd, payload, size)
            }
            if i >= 3 { times.append(Double(monotonicNanos() - t0)) }
        }
        serverDone.wait()
        c.close(); listener.close()
        if let e = box.error { throw e }
        return times
    }
}

func rawSend(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) throws {
    var off = 0
    while off < n {
        let r = send(fd, p + off, n - off, Int32(MSG_NOSIGNAL))
        if r <= 0 { if r < 0 && errno == EINTR { continue }; throw WireError.io("raw send", errno: errno) }
        off += r
    }
}

func rawRecv(_ fd: Int32, _ p: UnsafeMutableRawPointer, _ n: Int) throws {
    var off = 0
    while off < n {
        let r = recv(fd, p + off, n - off, 0)
        if r <= 0 { if r < 0 && errno == EINTR { continue }; throw WireError.io("raw recv", errno: errno) }
        off += r
    }
}
