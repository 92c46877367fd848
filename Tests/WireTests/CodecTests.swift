import XCTest
@testable import Wire

/// Casts are checked against Swift's own Float16 conversion (IEEE round-to-nearest-even) and, for BF16, against
/// the nearest of the two neighbouring bfloat16 values computed in Double. Tolerances: F32 exact; F16 relative
/// error ≤ 2⁻¹¹ in the normal range (absolute ≤ 2⁻²⁵ below it); BF16 relative error ≤ 2⁻⁸.
final class CodecTests: XCTestCase {
    func testF16EncodeMatchesSwiftFloat16() {
        var rng = SeededRNG(seed: 1)
        var specials: [Float] = [0, -0, 1, -1, 65504, 65519.99, 65520, 65536, 1e9, -1e9, .infinity, -.infinity,
                                 6.1035156e-05, 5.9604645e-08, 2.9802322e-08, 2.9802326e-08, 1e-10, .leastNonzeroMagnitude,
                                 Float(bitPattern: 0x3380_0000), Float(bitPattern: 0x3380_0001), 1.0009765625, 1.00048828125,
                                 1.000732421875, 2049, 2051]
        for _ in 0..<200_000 { specials.append(Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng))) }
        for x in specials {
            let got = FloatCast.f16Bits(x)
            let want = Float16(x)
            if x.isNaN {
                XCTAssertTrue(Float16(bitPattern: got).isNaN, "NaN \(x.bitPattern)")
                XCTAssertEqual(got & 0x8000, UInt16((x.bitPattern >> 16) & 0x8000))
            } else {
                XCTAssertEqual(got, want.bitPattern, "x = \(x) (0x\(String(x.bitPattern, radix: 16)))")
            }
        }
    }

    func testF16DecodeExhaustive() {
        for h in 0...UInt16.max {
            let got = FloatCast.f32(f16: h)
            let want = Float(Float16(bitPattern: h))
            if want.isNaN { XCTAssertTrue(got.isNaN) } else { XCTAssertEqual(got.bitPattern, want.bitPattern, "h = \(h)") }
        }
    }

    func testBF16IsNearestEven() {
        var rng = SeededRNG(seed: 2)
        for i in 0..<200_000 {
            let x = i < 4 ? [Float(1), .infinity, -.greatestFiniteMagnitude, .nan][i]
                          : Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng))
            let b = FloatCast.bf16Bits(x)
            let y = FloatCast.f32(bf16: b)
            if x.isNaN { XCTAssertTrue(y.isNaN); continue }
            if x.isInfinite { XCTAssertEqual(y, x); continue }
            // Candidates: truncation and truncation + 1 ulp (in magnitude).
            let lo = Float(bitPattern: x.bitPattern & 0xFFFF_0000)
            let hi = Float(bitPattern: (x.bitPattern & 0xFFFF_0000) &+ 0x1_0000)
            // IEEE overflow: past the largest finite value the next candidate is ±2^128, which rounds to ±Inf.
            let hiValue = hi.isInfinite ? (hi < 0 ? -0x1p128 : 0x1p128) : Double(hi)
            let dlo = abs(Double(x) - Double(lo)), dhi = abs(Double(x) - hiValue)
            let want: Float = dlo < dhi ? lo : dhi < dlo ? hi : ((lo.bitPattern >> 16) & 1 == 0 ? lo : hi)
            XCTAssertEqual(y.bitPattern, want.bitPattern, "x = \(x)")
        }
    }

    func testShuffleLayoutAndInverse() {
        let src: [UInt32] = [0x0403_0201, 0x0807_0605, 0x0C0B_0A09]
        var dst = [UInt8](repeating: 0, count: 12)
        src.withUnsafeBytes { s in dst.withUnsafeMutableBytes { ByteShuffle.shuffle(s.baseAddress!, $0.baseAddress!, count: 3, elementSize: 4) } }
        XCTAssertEqual(dst, [1, 5, 9, 2, 6, 10, 3, 7, 11, 4, 8, 12])
        for size in [2, 3, 4, 8] {
            let n = 1001
            let data = (0..<n * size).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ $0 >> 3) }
            var mid = [UInt8](repeating: 0, count: data.count), back = mid
            data.withUnsafeBytes { s in mid.withUnsafeMutableBytes { ByteShuffle.shuffle(s.baseAddress!, $0.baseAddress!, count: n, elementSize: size) } }
            mid.withUnsafeBytes { s in back.withUnsafeMutableBytes { ByteShuffle.unshuffle(s.baseAddress!, $0.baseAddress!, count: n, elementSize: size) } }
            XCTAssertEqual(back, data, "element size \(size)")
        }
    }

    func roundTrip(_ values: [Float], _ options: ShardOptions, codec: ShardCodec = ShardCodec()) throws -> ([Float], ShardEncodeInfo) {
        let b = WireBuffer()
        let info = try codec.encode(values, count: values.count, options: options, into: b)
        var r = WireReader(b.bytes)
        let view = try ShardView.read(from: &r, expectedCount: values.count, field: "shard")
        try r.finish("shard")
        XCTAssertEqual(view.compressed, info.compressed)
        var out = [Float](repeating: .nan, count: values.count)
        try codec.decode(view, into: &out)
        return (out, info)
    }

    func testF32RoundTripIsExactForEveryOption() throws {
        var rng = SeededRNG(seed: 3)
        let normal = (0..<10_000).map { _ in rng.normal() }
        let smooth = (0..<10_000).map { Float(sin(Double($0) * 0.001)) }
        let zeros = [Float](repeating: 0, count: 10_000)
        let specials: [Float] = [.nan, .infinity, -.infinity, -0, .leastNonzeroMagnitude, .greatestFiniteMagnitude]
        for data in [normal, smooth, zeros, specials, []] {
            for shuffle in [false, true] {
                for compression in CompressionMode.allCases {
                    let (out, _) = try roundTrip(data, ShardOptions(dtype: .f32, shuffle: shuffle, compression: compression))
                    XCTAssertEqual(out.map(\.bitPattern), data.map(\.bitPattern), "shuffle \(shuffle) \(compression)")
                }
            }
        }
    }

    func testLossyRoundTripsWithinStatedTolerance() throws {
        var rng = SeededRNG(seed: 4)
        let data = (0..<20_000).map { _ in rng.normal() * 3 }
        for shuffle in [false, true] {
            for compression in CompressionMode.allCases {
                let (h, _) = try roundTrip(data, ShardOptions(dtype: .f16, shuffle: shuffle, compression: compression))
                let (b, _) = try roundTrip(data, ShardOptions(dtype: .bf16, shuffle: shuffle, compression: compression))
                for i in 0..<data.count {
                    let x = data[i]
                    XCTAssertLessThanOrEqual(abs(h[i] - x), max(abs(x) * 0x1p-11, 0x1p-25), "f16 \(x)")
                    XCTAssertLessThanOrEqual(abs(b[i] - x), abs(x) * 0x1p-8, "bf16 \(x)")
                }
            }
        }
    }

    func testStoredRawEscapeAndCompression() throws {
        var rng = SeededRNG(seed: 5)
        let random = (0..<4096).map { _ in Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng) & 0xBFFF_FFFF) }
        let (_, r) = try roundTrip(random, ShardOptions(dtype: .f32, shuffle: false, compression: .lz4))
        XCTAssertFalse(r.compressed, "random bits must be stored raw")
        XCTAssertEqual(r.storedBytes, 4096 * 4)
        let (_, z) = try roundTrip([Float](repeating: 0.25, count: 4096), ShardOptions(dtype: .f32, shuffle: true, compression: .lz4))
        XCTAssertTrue(z.compressed)
        XCTAssertLessThan(z.storedBytes, 4096 * 4 / 50)
    }

    func testCorruptLZ4BlockIsATypedError() throws {
        let b = WireBuffer()
        let data = [Float](repeating: 1.5, count: 1000)
        let codec = ShardCodec()
        try codec.encode(data, count: data.count, options: ShardOptions(dtype: .f32, shuffle: true, compression: .lz4), into: b)
        var bytes = Array(b.bytes)
        for i in ShardView.headerSize..<bytes.count { bytes[i] = 0xFF }
        var out = [Float](repeating: 0, count: 1000)
        XCTAssertThrowsError(try bytes.withUnsafeBytes { p in
            var r = WireReader(p)
            let v = try ShardView.read(from: &r, expectedCount: 1000, field: "shard")
            try codec.decode(v, into: &out)
        }) { XCTAssertTrue($0 is WireError) }
    }

    func testAutoModeFollowsTheCostModel() {
        var a = AutoCompression()
        XCTAssertTrue(a.shouldTry(), "no measurement yet: try")
        // Incompressible at 1 GB/s compress: never pays on a 1 GB/s link.
        a.observeCompression(raw: 1 << 20, compressed: 1 << 20, seconds: 1e-3)
        XCTAssertFalse(a.compressionPays)
        var tries = 0
        for _ in 0..<32 where a.shouldTry() { tries += 1 }
        XCTAssertEqual(tries, 2, "a trial every 16th shard keeps the ratio current")
        // Compressible to 10 % at 2 GB/s on a slow 100 MB/s link: pays.
        var b = AutoCompression()
        b.observeLink(bytes: 100 << 20, seconds: 1.0)
        b.observeCompression(raw: 2 << 20, compressed: (2 << 20) / 10, seconds: 1e-3)
        XCTAssertTrue(b.compressionPays)
        // Same data on a 20 GB/s link: the codec costs more than the transfer saves.
        var c = b
        c.observeLink(bytes: 20 << 30, seconds: 1.0)
        for _ in 0..<20 { c.observeLink(bytes: 20 << 30, seconds: 1.0) }
        XCTAssertFalse(c.compressionPays)
    }
}

/// The encoder writes cast and shuffle straight into the frame (BF16 cast and shuffle fused); the stored bytes
/// must still be exactly those of the three stages of docs/protocol.md §4 run one after the other, and BF16
/// shards must decode to BF16 bits without widening.
final class CodecPassTests: XCTestCase {
    /// dtype cast then byte shuffle, written out the slow way (the reference for the stored bytes).
    func staged(_ values: [Float], _ dtype: ShardDType, shuffle: Bool) -> [UInt8] {
        var plain: [UInt8] = []
        for x in values {
            switch dtype {
            case .f32: withUnsafeBytes(of: x.bitPattern.littleEndian) { plain += $0 }
            case .f16: withUnsafeBytes(of: FloatCast.f16Bits(x).littleEndian) { plain += $0 }
            case .bf16: withUnsafeBytes(of: FloatCast.bf16Bits(x).littleEndian) { plain += $0 }
            }
        }
        guard shuffle else { return plain }
        let n = values.count, s = dtype.size
        var out = [UInt8](repeating: 0, count: plain.count)
        for i in 0..<n { for b in 0..<s { out[b * n + i] = plain[i * s + b] } }
        return out
    }

    func shardView(_ b: WireBuffer, at offset: Int, count: Int) throws -> ShardView {
        var r = WireReader(UnsafeRawBufferPointer(rebasing: b.bytes[offset...]))
        return try ShardView.read(from: &r, expectedCount: count, field: "shard")
    }

    func testStoredBytesAreTheThreeStagesInOrder() throws {
        var rng = SeededRNG(seed: 8)
        let normal = (0..<3001).map { _ in rng.normal() * 2 }
        let specials: [Float] = [.nan, -.nan, .infinity, -.infinity, -0, 0, 65520, 1e-30, .greatestFiniteMagnitude]
        let codec = ShardCodec(capacity: 16)   // grows on the first shard
        for data in [normal, specials, []] {
            for dtype in ShardDType.allCases {
                for shuffle in [false, true] {
                    for lead in [0, 1] {   // an odd offset in the frame buffer (a shard behind an odd-length one)
                        let b = WireBuffer()
                        for _ in 0..<lead { b.append(UInt8(0xAB)) }
                        let info = try codec.encode(data, count: data.count,
                                                    options: ShardOptions(dtype: dtype, shuffle: shuffle, compression: .none), into: b)
                        let view = try shardView(b, at: lead, count: data.count)
                        XCTAssertFalse(info.compressed)
                        XCTAssertEqual(view.shuffle, shuffle)
                        XCTAssertEqual(Array(view.stored), staged(data, dtype, shuffle: shuffle), "\(dtype) shuffle \(shuffle) lead \(lead)")
                    }
                }
            }
        }
    }

    /// BF16 shards of every shuffle × LZ4 choice decode to the BF16 bits of the input, both to BF16 words and
    /// (widened) to floats; LZ4 is really used on compressible data.
    func testBF16ShardsDecodeToBF16BitsWithoutWidening() throws {
        var rng = SeededRNG(seed: 9)
        let normal = (0..<5000).map { _ in rng.normal() }
        let steps = (0..<5000).map { Float(($0 * 7) % 13 - 6) * 0.375 }      // compresses with and without shuffle
        let specials: [Float] = [.nan, .infinity, -.infinity, -0, 3.0e38, 1e-40]
        let codec = ShardCodec(capacity: 16)
        for data in [normal, steps, specials] {
            let want = data.map { FloatCast.bf16Bits($0) }
            for shuffle in [false, true] {
                for compression in [CompressionMode.none, .lz4] {
                    let b = WireBuffer()
                    let info = try codec.encode(data, count: data.count,
                                                options: ShardOptions(dtype: .bf16, shuffle: shuffle, compression: compression), into: b)
                    if data == steps && compression == .lz4 { XCTAssertTrue(info.compressed, "shuffle \(shuffle)") }
                    let view = try shardView(b, at: 0, count: data.count)
                    var bits = [UInt16](repeating: 0x5555, count: data.count)
                    try codec.decode(bf16: view, into: &bits)
                    XCTAssertEqual(bits, want, "shuffle \(shuffle) \(compression)")
                    var floats = [Float](repeating: 0, count: data.count)
                    try codec.decode(view, into: &floats)
                    XCTAssertEqual(floats.map(\.bitPattern), want.map { UInt32($0) << 16 }, "widened, shuffle \(shuffle) \(compression)")
                }
            }
        }
    }

    func testBF16DecodeRefusesOtherDTypesAndCorruptBlocks() throws {
        let codec = ShardCodec()
        let data = [Float](repeating: 1.25, count: 1000)
        var bits = [UInt16](repeating: 0, count: 1000)
        for dtype in [ShardDType.f32, .f16] {
            let b = WireBuffer()
            try codec.encode(data, count: 1000, options: ShardOptions(dtype: dtype, shuffle: false, compression: .none), into: b)
            XCTAssertThrowsError(try codec.decode(bf16: try shardView(b, at: 0, count: 1000), into: &bits)) {
                XCTAssertTrue($0 is WireError, "\($0)")
            }
        }
        for shuffle in [false, true] {
            let b = WireBuffer()
            let info = try codec.encode(data, count: 1000, options: ShardOptions(dtype: .bf16, shuffle: shuffle, compression: .lz4), into: b)
            XCTAssertTrue(info.compressed)
            var bytes = Array(b.bytes)
            for i in ShardView.headerSize..<bytes.count { bytes[i] = 0xFF }
            XCTAssertThrowsError(try bytes.withUnsafeBytes { p in
                var r = WireReader(p)
                try codec.decode(bf16: try ShardView.read(from: &r, expectedCount: 1000, field: "shard"), into: &bits)
            }) { XCTAssertTrue($0 is WireError, "\($0)") }
        }
    }
}
