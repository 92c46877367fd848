// libFuzzer entry point over the wire decoders: frame headers and payload checksums, every message body, the
// worker's handshake state machine, and the shard codec (decode of hostile shards; F32 round trips must be exact).
// Compiled into one module with Sources/Wire by bench/fuzz.sh; not part of the package build.
//
// Input layout: byte 0 picks the target, the rest is its data. Targets 1–3 re-seal their data into frames with
// correct checksums, so the fuzzer reaches the message decoders instead of stopping at the CRC.

import Foundation

/// Small limits so that every accepted input allocates at most a few MiB.
let fuzzLimits = WireLimits(maxPayload: 1 << 20, maxDecodedBytes: 4 << 20)
let fuzzSecret = try! WireSecret(bytes: Array("fuzzing secret of thirty-two b..".utf8))
let fuzzFingerprint = ModelFingerprint(hashing: "fuzz model")
let codec = ShardCodec()
var groups: [ExpertGroup] = []
var floats = UnsafeMutablePointer<Float>.allocate(capacity: 1)
var floatCapacity = 1
let frameBuffer = WireBuffer()

func ensureFloats(_ n: Int) {
    if n > floatCapacity { floats.deallocate(); floatCapacity = n; floats = .allocate(capacity: n) }
}

/// Decodes `payload` as a message of `type` the way a worker or coordinator would, shards included.
func decodeBody(_ type: MessageType, _ payload: UnsafeRawBufferPointer) {
    var r = WireReader(payload)
    switch type {
    case .hello: _ = try? Hello(from: &r)
    case .welcome: _ = try? Welcome(from: &r)
    case .auth: _ = try? Auth(from: &r)
    case .ready: _ = try? Ready(from: &r)
    case .error: _ = try? ErrorMessage(from: &r)
    case .ping: _ = try? Ping(from: &r)
    case .pong: _ = try? Pong(from: &r)
    case .stats: _ = try? StatsRequest(from: &r)
    case .statsReply: _ = try? StatsReply(from: &r)
    case .shutdown: _ = try? Shutdown(from: &r)
    case .expert:
        guard let req = try? ExpertMessage.decodeRequest(payload, groups: &groups, limits: fuzzLimits) else { return }
        ensureFloats(max(req.totalRows * req.dim, 1))
        _ = try? codec.decode(req.activations, into: floats)
        // A BF16 worker's path: BF16 bits without widening (floats holds at least as many bytes).
        _ = try? codec.decode(bf16: req.activations, into: UnsafeMutableRawPointer(floats).assumingMemoryBound(to: UInt16.self))
        _ = try? codec.decode(req.gate, into: floats)
    case .expertResult:
        guard let res = try? ExpertMessage.decodeResult(payload, groups: &groups, limits: fuzzLimits) else { return }
        ensureFloats(max(res.totalRows * res.dim, 1))
        _ = try? codec.decode(res.output, into: floats)
    }
}

/// Seals `payload` into a frame of `type` with correct checksums and decodes it back.
func sealed(_ type: MessageType, _ payload: UnsafeRawBufferPointer) -> ReceivedFrame? {
    guard (try? Frame.encode(into: frameBuffer, type: type, requestID: 1, { $0.append(bytes: payload) })) != nil,
          let f = try? Frame.decode(frameBuffer.bytes, limits: fuzzLimits) else { return nil }
    return ReceivedFrame(header: f.header, payload: f.payload)
}

func fuzzRawFrames(_ d: UnsafeRawBufferPointer) {
    var rest = d
    while rest.count > 0, let f = try? Frame.decode(rest, limits: fuzzLimits) {
        decodeBody(f.header.type, f.payload)
        rest = UnsafeRawBufferPointer(rebasing: rest[f.consumed...])
    }
}

func fuzzSealedMessage(_ d: UnsafeRawBufferPointer) {
    guard d.count >= 1 else { return }
    let type = MessageType.allCases[Int(d[0]) % MessageType.allCases.count]
    let body = UnsafeRawBufferPointer(rebasing: d[1...])
    guard let f = sealed(type, body) else { return }
    decodeBody(type, f.payload)
}

/// Chunks `u8 type, u16 length, bytes` fed in order to a fresh server handshake until it fails.
func fuzzHandshake(_ d: UnsafeRawBufferPointer) {
    var machine = ServerHandshake(secret: fuzzSecret, fingerprint: fuzzFingerprint)
    var at = 0
    while at + 3 <= d.count {
        let type = MessageType.allCases[Int(d[at]) % MessageType.allCases.count]
        let n = min(Int(d[at + 1]) | Int(d[at + 2]) << 8, d.count - at - 3)
        let body = UnsafeRawBufferPointer(rebasing: d[(at + 3)..<(at + 3 + n)])
        at += 3 + n
        // The handshake runs under the lowered limit, as in HandshakeAcceptor.
        guard body.count <= Handshake.maxPayload, let f = sealed(type, body) else { return }
        let step = try? machine.receive(f) { _ in
            Welcome(nonce: [], fingerprint: fuzzFingerprint, workerName: "fuzz", numa: .unbound, experts: [0, 1], proof: [])
        }
        guard let step else { return }
        if case .authenticated = step { fatalError("authenticated without the secret") }
    }
}

/// Bytes 0–3 choose the shard options, the rest are F32 values: encode, then decode must give the same bits.
/// Then the same bytes as a hostile shard header + stored bytes.
func fuzzShardCodec(_ d: UnsafeRawBufferPointer) {
    guard d.count >= 2 else { return }
    let shuffle = d[0] & 1 == 1
    let compression: CompressionMode = [.none, .lz4, .auto][Int(d[1]) % 3]
    let n = (d.count - 2) / 4
    ensureFloats(max(2 * n, 1))
    UnsafeMutableRawPointer(floats).copyMemory(from: d.baseAddress! + 2, byteCount: n * 4)
    frameBuffer.reset()
    guard (try? codec.encode(floats, count: n, options: ShardOptions(dtype: .f32, shuffle: shuffle, compression: compression),
                             into: frameBuffer)) != nil else { fatalError("encode failed for \(n) values") }
    var r = WireReader(frameBuffer.bytes)
    guard let view = try? ShardView.read(from: &r, expectedCount: n, field: "fuzz"),
          (try? codec.decode(view, into: floats + n)) != nil else { fatalError("own shard did not decode") }
    if memcmp(floats, floats + n, n * 4) != 0 { fatalError("F32 shard round trip changed values") }
    // Hostile: the input itself as a shard, with the count it declares (bounded).
    var h = WireReader(UnsafeRawBufferPointer(rebasing: d[2...]))
    let declared = d.count >= 10 ? Int(d.loadUnaligned(fromByteOffset: 6, as: UInt32.self).littleEndian) : 0
    guard declared <= 1 << 20, let hostile = try? ShardView.read(from: &h, expectedCount: declared, field: "fuzz") else { return }
    ensureFloats(max(declared, 1))
    _ = try? codec.decode(hostile, into: floats)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let d = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    switch data[0] % 4 {
    case 0: fuzzRawFrames(d)
    case 1: fuzzSealedMessage(d)
    case 2: fuzzHandshake(d)
    default: fuzzShardCodec(d)
    }
    return 0
}

/// With FUZZ_SEEDS=dir, writes a valid input of every target there (a starting corpus) before fuzzing.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    guard let dir = ProcessInfo.processInfo.environment["FUZZ_SEEDS"] else { return 0 }
    var seeds: [[UInt8]] = []
    func frame<M: WireMessage>(_ m: M) -> [UInt8] {
        let b = WireBuffer()
        try! Frame.encode(into: b, type: M.messageType, requestID: 3) { try m.encode(into: $0) }
        return Array(b.bytes)
    }
    let nonce = [UInt8](repeating: 5, count: 32)
    let hello = Hello(nonce: nonce, fingerprint: fuzzFingerprint, peerName: "seed")
    let msgs: [[UInt8]] = [frame(hello), frame(Auth(proof: nonce)), frame(Ping(data: [1, 2, 3])), frame(Ready()),
                           frame(ErrorMessage(code: .timeout, text: "t")),
                           frame(StatsReply(workerName: "w", numa: .unbound, uptimeNanos: 1, bytesIn: 2, bytesOut: 3,
                                            connections: 1, experts: [ExpertStat(expert: 0, requests: 1, rows: 2, computeNanos: 3)]))]
    for m in msgs { seeds.append([0] + m) }
    for m in msgs { seeds.append([1, m[6]] + m[Frame.headerSize...]) }
    let values = (0..<256).map { Float($0 % 7) * 0.25 }
    for options in [ShardOptions.raw, ShardOptions(dtype: .f32, shuffle: true, compression: .lz4),
                    ShardOptions(dtype: .bf16, shuffle: true, compression: .lz4), ShardOptions(dtype: .f16, shuffle: false, compression: .none)] {
        let b = WireBuffer()
        try! Frame.encode(into: b, type: .expert, requestID: 9) { w in
            try ExpertMessage.encodeRequest(into: w, layer: 1, dim: 16, groups: [ExpertGroup(expert: 0, rows: 10), ExpertGroup(expert: 3, rows: 6)],
                                            activations: values, gate: values, codec: ShardCodec(), options: options)
        }
        seeds.append([0] + Array(b.bytes))
        seeds.append([1, MessageType.expert.rawValue] + Array(b.bytes)[Frame.headerSize...])
        let o = WireBuffer()
        try! Frame.encode(into: o, type: .expertResult, requestID: 9) { w in
            try ExpertMessage.encodeResult(into: w, layer: 1, dim: 16, groups: [ExpertGroup(expert: 0, rows: 16)],
                                           computeNanos: 5, output: values, codec: ShardCodec(), options: options)
        }
        seeds.append([0] + Array(o.bytes))
    }
    let h = Array(frame(hello)[Frame.headerSize...])
    seeds.append([2, MessageType.hello.rawValue, UInt8(h.count & 0xFF), UInt8(h.count >> 8)] + h
                 + [MessageType.auth.rawValue, 32, 0] + nonce)
    seeds.append([3, 1, 0] + values.withUnsafeBytes { Array($0) })
    seeds.append([3, 0, 1] + values.withUnsafeBytes { Array($0) })
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    for (i, s) in seeds.enumerated() {
        _ = FileManager.default.createFile(atPath: "\(dir)/seed-\(i)", contents: Data(s))
    }
    return 0
}
