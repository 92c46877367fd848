import XCTest
@testable import Wire

final class FrameTests: XCTestCase {
    static let nonceA = (0..<32).map { UInt8($0) }
    static let nonceB = (0..<32).map { UInt8(255 - $0) }
    static let fp = ModelFingerprint(bytes: (0..<32).map { UInt8($0 * 7 & 0xFF) })
    static let numa = NUMAReport(requestedNode: 0, cpuNode: 0, pageNode: 0, verified: true)

    func roundTrip<M: WireMessage & Equatable>(_ m: M, file: StaticString = #filePath, line: UInt = #line) throws {
        let bytes = try frameBytes(m, requestID: 0xDEAD_BEEF_0123)
        let (h, _) = try decodeFrame(bytes)
        XCTAssertEqual(h.type, M.messageType, file: file, line: line)
        XCTAssertEqual(h.requestID, 0xDEAD_BEEF_0123, file: file, line: line)
        XCTAssertEqual(h.payloadLength, bytes.count - Frame.headerSize, file: file, line: line)
        XCTAssertEqual(try decodeMessage(bytes, as: M.self), m, file: file, line: line)
    }

    func testEveryMessageTypeRoundTrips() throws {
        try roundTrip(Hello(nonce: Self.nonceA, fingerprint: Self.fp, peerName: "coordinator@host ✓"))
        try roundTrip(Welcome(nonce: Self.nonceB, fingerprint: Self.fp, workerName: "w0", numa: Self.numa,
                              experts: [0, 1, 2, 3, 6], proof: Self.nonceA))
        try roundTrip(Auth(proof: Self.nonceB))
        try roundTrip(Ready())
        try roundTrip(ErrorMessage(code: .authFailed, text: "no"))
        try roundTrip(Ping(data: [1, 2, 3]))
        try roundTrip(Pong(data: []))
        try roundTrip(StatsRequest())
        try roundTrip(StatsReply(workerName: "w1", numa: .unbound, uptimeNanos: 123, bytesIn: 1 << 40, bytesOut: 5,
                                 connections: 2, experts: [ExpertStat(expert: 4, requests: 9, rows: 1000, computeNanos: 77)]))
        try roundTrip(Shutdown())
        // EXPERT and EXPERT_RESULT, with every dtype.
        for dtype in ShardDType.allCases {
            try expertRoundTrip(dtype: dtype)
        }
        // Every type in the enum is covered above.
        XCTAssertEqual(MessageType.allCases.count, 12)
    }

    func expertRoundTrip(dtype: ShardDType) throws {
        let dim = 8
        let groups = [ExpertGroup(expert: 2, rows: 3), ExpertGroup(expert: 5, rows: 0), ExpertGroup(expert: 7, rows: 2)]
        let rows = 5
        var rng = SeededRNG(seed: 42)
        let act = (0..<rows * dim).map { _ in rng.normal() }
        let gate = (0..<rows).map { _ in Float.random(in: 0...1, using: &rng) }
        let codec = ShardCodec()
        let options = ShardOptions(dtype: dtype, shuffle: true, compression: .lz4)
        let bytes = try frameBytes(type: .expert) { b in
            try ExpertMessage.encodeRequest(into: b, layer: 3, dim: dim, groups: groups, activations: act, gate: gate,
                                            codec: codec, options: options)
        }
        let (h, payload) = try decodeFrame(bytes)
        XCTAssertEqual(h.type, .expert)
        var gotGroups: [ExpertGroup] = []
        var gotAct = [Float](repeating: .nan, count: rows * dim)
        var gotGate = [Float](repeating: .nan, count: rows)
        try payload.withUnsafeBytes { p in
            let v = try ExpertMessage.decodeRequest(p, groups: &gotGroups)
            XCTAssertEqual(v.layer, 3); XCTAssertEqual(v.dim, dim); XCTAssertEqual(v.totalRows, rows)
            XCTAssertEqual(v.activations.dtype, dtype)
            try codec.decode(v.activations, into: &gotAct)
            try codec.decode(v.gate, into: &gotGate)
        }
        XCTAssertEqual(gotGroups, groups)
        XCTAssertEqual(gotGate, gate)   // gate weights are always exact F32
        let tol: Float = dtype == .f32 ? 0 : dtype == .f16 ? 1.0 / 2048 : 1.0 / 256
        for i in 0..<act.count { XCTAssertLessThanOrEqual(abs(gotAct[i] - act[i]), tol * abs(act[i]) + 1e-7, "\(dtype) \(i)") }

        let resultBytes = try frameBytes(type: .expertResult) { b in
            try ExpertMessage.encodeResult(into: b, layer: 3, dim: dim, groups: groups, computeNanos: 999, output: act,
                                           codec: codec, options: options)
        }
        let (rh, rp) = try decodeFrame(resultBytes)
        XCTAssertEqual(rh.type, .expertResult)
        try rp.withUnsafeBytes { p in
            let v = try ExpertMessage.decodeResult(p, groups: &gotGroups)
            XCTAssertEqual(v.computeNanos, 999); XCTAssertEqual(v.totalRows, rows)
            try codec.decode(v.output, into: &gotAct)
        }
        for i in 0..<act.count { XCTAssertLessThanOrEqual(abs(gotAct[i] - act[i]), tol * abs(act[i]) + 1e-7) }
    }

    // MARK: rejection

    func assertThrows(_ bytes: [UInt8], limits: WireLimits = .default, _ check: (WireError) -> Bool,
                      file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try decodeFrame(bytes, limits: limits), file: file, line: line) { e in
            guard let w = e as? WireError else { return XCTFail("not a WireError: \(e)", file: file, line: line) }
            XCTAssertTrue(check(w), "unexpected error \(w)", file: file, line: line)
        }
    }

    func testTruncatedFramesAreRejectedAtEveryLength() throws {
        let bytes = try frameBytes(Hello(nonce: Self.nonceA, fingerprint: Self.fp, peerName: "c"))
        for n in 0..<bytes.count {
            assertThrows(Array(bytes[0..<n])) { if case .truncated = $0 { return true }; return false }
        }
        XCTAssertNoThrow(try decodeFrame(bytes))
    }

    func testWrongMagicVersionFlagsType() {
        assertThrows(rawFrame(type: 8, magic: 0x1234_5678, payload: [1])) { $0 == .badMagic(0x1234_5678) }
        assertThrows(rawFrame(type: 8, version: 1, payload: [1])) { $0 == .unsupportedVersion(1) }
        assertThrows(rawFrame(type: 8, flags: 0x80, payload: [1])) { $0 == .badFlags(0x80) }
        // Bit 0 (no payload checksum) only where the receiver allows it.
        assertThrows(rawFrame(type: 8, flags: 0x01, payload: [1])) { $0 == .badFlags(0x01) }
        XCTAssertNoThrow(try decodeFrame(rawFrame(type: 8, flags: 0x01, payload: [1]),
                                         limits: WireLimits(maxPayload: 16, acceptUnchecksummed: true)))
        assertThrows(rawFrame(type: 0, payload: [])) { $0 == .unknownType(0) }
        assertThrows(rawFrame(type: 13, payload: [])) { $0 == .unknownType(13) }
        assertThrows(rawFrame(type: 255, payload: [])) { $0 == .unknownType(255) }
    }

    func testOversizeLengthRejectedFromHeaderAlone() {
        // Only the header is present: the length must be refused before the decoder looks for (or allocates) a payload.
        let header = Array(rawFrame(type: 8, payload: [], claimedLength: 0xFFFF_FFFF)[0..<Frame.headerSize])
        assertThrows(header) { $0 == .frameTooLarge(length: 0xFFFF_FFFF, limit: WireLimits.default.maxPayload) }
        let small = WireLimits(maxPayload: 16)
        assertThrows(rawFrame(type: 8, payload: [UInt8](repeating: 1, count: 17)), limits: small) {
            $0 == .frameTooLarge(length: 17, limit: 16)
        }
        XCTAssertNoThrow(try decodeFrame(rawFrame(type: 8, payload: [UInt8](repeating: 1, count: 16)), limits: small))
    }

    func testBadChecksums() throws {
        var bytes = try frameBytes(Ping(data: [1, 2, 3, 4]))
        bytes[Frame.headerSize + 2] ^= 0x10
        assertThrows(bytes) { if case .badPayloadChecksum = $0 { return true }; return false }
        bytes = try frameBytes(Ping(data: [1, 2, 3, 4]))
        bytes[8] ^= 1   // request id: only the header checksum can notice
        assertThrows(bytes) { if case .badHeaderChecksum = $0 { return true }; return false }
        bytes = try frameBytes(Ping(data: [1, 2, 3, 4]))
        bytes[21] ^= 1  // the header checksum itself
        assertThrows(bytes) { if case .badHeaderChecksum = $0 { return true }; return false }
        // The payload CRC32C is zero-extended to 64 bits: a set upper bit never matches, even with a valid header.
        let payload: [UInt8] = [1, 2, 3, 4]
        let crc = payload.withUnsafeBytes { CRC32C.checksum($0) }
        var high = [UInt8](repeating: 0, count: Frame.headerSize)
        high.withUnsafeMutableBytes {
            Frame.writeHeader(to: $0.baseAddress!, rawType: MessageType.ping.rawValue, version: Frame.version,
                              flags: 0, requestID: 1, payloadLength: 4, payloadChecksum: UInt64(crc) | 1 << 40)
        }
        assertThrows(high + payload) { $0 == .badPayloadChecksum(expected: UInt64(crc) | 1 << 40, got: UInt64(crc)) }
        XCTAssertNoThrow(try decodeFrame(rawFrame(type: MessageType.ping.rawValue, payload: payload)))
    }

    func testMalformedPayloadsNameTheField() throws {
        // HELLO with a short nonce.
        let short = rawFrame(type: MessageType.hello.rawValue, payload: [1, 0] + [UInt8](repeating: 0, count: 10))
        XCTAssertThrowsError(try decodeMessage(short, as: Hello.self)) { e in
            guard case .malformed(let field, _)? = e as? WireError else { return XCTFail("\(e)") }
            XCTAssertEqual(field, "hello.nonce")
        }
        // Trailing bytes after a complete AUTH.
        let trailing = rawFrame(type: MessageType.auth.rawValue, payload: [UInt8](repeating: 0, count: 33))
        XCTAssertThrowsError(try decodeMessage(trailing, as: Auth.self)) { e in
            guard case .malformed(let field, _)? = e as? WireError else { return XCTFail("\(e)") }
            XCTAssertEqual(field, "AUTH")
        }
        // A list count far larger than the payload.
        var p = [UInt8]()
        p += [0, 0]                                  // name length 0
        p += [UInt8](repeating: 0, count: 13)        // numa report
        p += [UInt8](repeating: 0, count: 28)        // uptime, bytes in/out, connections
        p += [0xFF, 0xFF, 0xFF, 0x7F]                // expert stats count
        XCTAssertThrowsError(try decodeMessage(rawFrame(type: MessageType.statsReply.rawValue, payload: p), as: StatsReply.self)) { e in
            guard case .malformed(let field, _)? = e as? WireError else { return XCTFail("\(e)") }
            XCTAssertEqual(field, "stats.experts")
        }
        // ERROR frames surface as peer errors when a different message was expected.
        let err = try frameBytes(ErrorMessage(code: .expertNotHosted, text: "expert 9"))
        XCTAssertThrowsError(try decodeMessage(err, as: Welcome.self)) { e in
            XCTAssertEqual(e as? WireError, .peer(code: WireErrorCode.expertNotHosted.rawValue, text: "expert 9"))
        }
    }

    func testExpertRequestInconsistentCountsRejected() throws {
        let dim = 4
        let act = [Float](repeating: 1, count: 8), gate: [Float] = [1, 1]
        let codec = ShardCodec()
        let b = WireBuffer()
        try ExpertMessage.encodeRequest(into: b, layer: 0, dim: dim, groups: [ExpertGroup(expert: 0, rows: 2)],
                                        activations: act, gate: gate, codec: codec, options: .raw)
        var payload = Array(b.bytes)
        payload[12 + 4] = 3   // claim 3 rows for the group; the shards still hold 2
        var groups: [ExpertGroup] = []
        XCTAssertThrowsError(try payload.withUnsafeBytes { try ExpertMessage.decodeRequest($0, groups: &groups) }) { e in
            guard case .malformed(let field, _)? = e as? WireError else { return XCTFail("\(e)") }
            XCTAssertEqual(field, "expert.activations.elementCount")
        }
        payload[16] = 0xFF; payload[17] = 0xFF; payload[18] = 0xFF; payload[19] = 0xFF   // 2^32−1 rows
        XCTAssertThrowsError(try payload.withUnsafeBytes { try ExpertMessage.decodeRequest($0, groups: &groups) })
    }

    // MARK: randomised

    /// Valid frames of every type, then seeded random mutations (byte flips, truncation, extension, and garbage
    /// payloads re-sealed with correct checksums so the message decoders see them). Nothing may trap; every
    /// single-byte change of a sealed frame must be detected.
    func testMutatedFramesNeverCrashTheDecoder() throws {
        var rng = SeededRNG(seed: 0x5EED)
        let codec = ShardCodec()
        var seeds: [[UInt8]] = [
            try frameBytes(Hello(nonce: Self.nonceA, fingerprint: Self.fp, peerName: "c")),
            try frameBytes(Welcome(nonce: Self.nonceB, fingerprint: Self.fp, workerName: "w", numa: Self.numa,
                                   experts: [1, 2], proof: Self.nonceA)),
            try frameBytes(Auth(proof: Self.nonceA)), try frameBytes(Ready()),
            try frameBytes(ErrorMessage(code: .internalError, text: "x")), try frameBytes(Ping(data: [9, 9])),
            try frameBytes(StatsReply(workerName: "w", numa: Self.numa, uptimeNanos: 1, bytesIn: 2, bytesOut: 3,
                                      connections: 1, experts: [ExpertStat(expert: 1, requests: 1, rows: 1, computeNanos: 1)])),
            try frameBytes(Shutdown()),
        ]
        for options in [ShardOptions.raw, ShardOptions(dtype: .bf16, shuffle: true, compression: .lz4)] {
            let act = [Float](repeating: 0.5, count: 64), gate = [Float](repeating: 0.25, count: 4)
            seeds.append(try frameBytes(type: .expert) { b in
                try ExpertMessage.encodeRequest(into: b, layer: 1, dim: 16, groups: [ExpertGroup(expert: 3, rows: 4)],
                                                activations: act, gate: gate, codec: codec, options: options)
            })
            seeds.append(try frameBytes(type: .expertResult) { b in
                try ExpertMessage.encodeResult(into: b, layer: 1, dim: 16, groups: [ExpertGroup(expert: 3, rows: 4)],
                                               computeNanos: 5, output: act, codec: codec, options: options)
            })
        }
        var out = [Float](repeating: 0, count: 1 << 16)
        var groups: [ExpertGroup] = []
        var detected = 0, flips = 0, decodedGarbage = 0
        for iteration in 0..<6000 {
            var f = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
            let kind = iteration % 4
            switch kind {
            case 0:   // one byte changed: must be detected
                let i = Int.random(in: 0..<f.count, using: &rng)
                f[i] ^= UInt8.random(in: 1...255, using: &rng)
                flips += 1
                if (try? decodeFrame(f)) == nil { detected += 1 }
                continue
            case 1:   // several random bytes and a random length
                for _ in 0..<Int.random(in: 1...8, using: &rng) {
                    let i = Int.random(in: 0..<f.count, using: &rng); f[i] = UInt8.random(in: 0...255, using: &rng)
                }
                if Bool.random(using: &rng) { f = Array(f[0..<Int.random(in: 0...f.count, using: &rng)]) }
                else { f += (0..<Int.random(in: 1...16, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) } }
            default:  // keep the header type, scramble the payload, re-seal so the message decoders run
                let type = f[6]
                var payload = Array(f[Frame.headerSize...])
                if kind == 2 {
                    for _ in 0..<Int.random(in: 1...6, using: &rng) where !payload.isEmpty {
                        let i = Int.random(in: 0..<payload.count, using: &rng); payload[i] = UInt8.random(in: 0...255, using: &rng)
                    }
                } else {
                    payload = (0..<Int.random(in: 0...96, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                }
                f = rawFrame(type: type, payload: payload)
            }
            // Full decode path: frame, then the message by type, then shard decoding.
            do {
                try f.withUnsafeBytes { b in
                    let (h, p, _) = try Frame.decode(b)
                    let frame = ReceivedFrame(header: h, payload: p)
                    switch h.type {
                    case .hello: _ = try frame.decode(Hello.self)
                    case .welcome: _ = try frame.decode(Welcome.self)
                    case .auth: _ = try frame.decode(Auth.self)
                    case .ready: _ = try frame.decode(Ready.self)
                    case .error: _ = try frame.decode(ErrorMessage.self)
                    case .ping: _ = try frame.decode(Ping.self)
                    case .pong: _ = try frame.decode(Pong.self)
                    case .stats: _ = try frame.decode(StatsRequest.self)
                    case .statsReply: _ = try frame.decode(StatsReply.self)
                    case .shutdown: _ = try frame.decode(Shutdown.self)
                    case .expert:
                        let v = try ExpertMessage.decodeRequest(p, groups: &groups, limits: WireLimits(maxPayload: 1 << 18))
                        try codec.decode(v.activations, into: &out)
                        try codec.decode(v.gate, into: &out)
                    case .expertResult:
                        let v = try ExpertMessage.decodeResult(p, groups: &groups, limits: WireLimits(maxPayload: 1 << 18))
                        try codec.decode(v.output, into: &out)
                    }
                }
                decodedGarbage += 1
            } catch is WireError {
            } catch {
                XCTFail("untyped error \(error)")
            }
        }
        XCTAssertEqual(detected, flips, "every single-byte change must be detected")
        XCTAssertLessThan(decodedGarbage, 6000 / 2)
    }
}
