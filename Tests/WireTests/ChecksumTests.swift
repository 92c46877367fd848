import XCTest
@testable import Wire

/// Known-answer vectors for CRC32C (header and payload checksum, docs/protocol.md §1): RFC 3720 §B.4, the
/// catalogue check value of "123456789", and values from tools/wire_vectors.py (a bit-at-a-time CRC32C written from
/// the definition, independent of Sources/CSupport/crc32c.c). Every implementation path is checked: `checksum`
/// (the fastest path this CPU has: AVX-512 VPCLMULQDQ, SSE4.2 or tables), `sse42Checksum` and
/// `portableChecksum` (the slicing-by-8 fallback) called directly. Exact equality throughout.
final class ChecksumTests: XCTestCase {
    static func pattern(_ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 * 31 + 7) } }

    /// The first `n` bytes of SeededRNG(seed: 2024)'s u64 stream, little-endian (tools/wire_vectors.py `random`).
    static func random(_ n: Int) -> [UInt8] {
        var rng = SeededRNG(seed: 2024)
        var out: [UInt8] = []
        out.reserveCapacity(n + 8)
        while out.count < n { withUnsafeBytes(of: rng.next().littleEndian) { out += $0 } }
        return Array(out[0..<n])
    }

    /// crc32c(pattern(n)) for n in 0...100.
    static let small: [UInt32] = [
        0x00000000, 0x86B737BA, 0x8D10D7A1, 0x765A7C83, 0x65F1C5DC, 0x5D2E4463,
        0x63C6D8D2, 0x5110A112, 0x40795C72, 0x6FE35DA6, 0x6ADE9A0A, 0xB63EA091,
        0x2E6E07E6, 0x7FD38D92, 0xD8DBD813, 0x9B0C1517, 0xCF7845A4, 0x10C70233,
        0x47210E91, 0x37EB50E6, 0x0164BA3F, 0x5E44E587, 0x778CC4C7, 0x05336C70,
        0xF033D59B, 0xE48FA396, 0x4AE8782A, 0x86FDDFC2, 0x7C752AD1, 0x8BF67C8A,
        0x52F6A52D, 0x17430993, 0x9AC661B0, 0xD7082B08, 0xFED2E45D, 0xA9C28D77,
        0x71672B99, 0xCA807337, 0xD553B5F7, 0x252C3DDF, 0x1C158427, 0x2BD6716F,
        0x3295FA34, 0x0A4093B9, 0xE5703CA6, 0x1EDE00CB, 0x121D7C9B, 0xB3543EDA,
        0xD233E4FA, 0xCD3AA2B8, 0xBFB3CB68, 0x9C72F844, 0x237975A4, 0x75FA21BA,
        0x1B5CD77B, 0xDAB48FA4, 0x8563B7AE, 0xC1552087, 0x4BC84EDF, 0x60DE0A43,
        0x6DC8221D, 0x2594A648, 0x93DE39DE, 0xD7013350, 0x2B1D65D8, 0x1C1BB57F,
        0xB87B6F3F, 0x09C449B7, 0xD38C98FB, 0x6A62F5CF, 0x4F74C8D1, 0x0317FD4A,
        0xDAACC48E, 0x902F3527, 0xD931C8DD, 0x7219EC47, 0x9AA33B55, 0x9F59DC2F,
        0x168B4A9C, 0x84AA641D, 0xE5FED651, 0x9709E275, 0xE3F11CE1, 0x855AF23D,
        0x0AF75CB1, 0x31BAEF82, 0x819F0815, 0xF4A0C824, 0x2706164F, 0xB16AFD5D,
        0xD334364F, 0x11DEA236, 0x096DEC7A, 0xF13A676D, 0xA6FB8303, 0x58FF1388,
        0x5225AC42, 0x84EECAFB, 0xDD32B8F9, 0x0FBD6956, 0xE26C441C,
    ]
    static let patternVectors: [(Int, UInt32)] = [
        (255, 0x0FD95F5E),
        (1000, 0xFF52EE97),
        (4097, 0xEFBF0598),
    ]
    /// Lengths around the 256-byte folding block, the 3 × 256 and 3 × 8192 stream blocks, and 1 MiB + 3.
    static let randomVectors: [(Int, UInt32)] = [
        (255, 0x4ED0A5C4),
        (256, 0x7CBD07AB),
        (257, 0x6CD1AD66),
        (319, 0x40D735D7),
        (320, 0xAC6ED50B),
        (1000, 0x57D54E0C),
        (4103, 0x7E07F4B7),
        (24576, 0xDAB4AC81),
        (24831, 0xDB072C41),
        (65549, 0x75317FDE),
        (1048579, 0x277B2CA0),
    ]

    typealias Path = (String, (UnsafeRawBufferPointer, UInt32) -> UInt32)
    static let paths: [Path] = [
        ("dispatch (\(CRC32C.implementation))", { CRC32C.checksum($0, crc: $1) }),
        ("sse4.2", { CRC32C.sse42Checksum($0, crc: $1) }),
        ("portable", { CRC32C.portableChecksum($0, crc: $1) }),
    ]

    /// `bytes` copied to `offset` bytes past a 64-byte aligned address, so every start alignment is exercised.
    static func withOffset<R>(_ bytes: [UInt8], _ offset: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes.count + offset + 1, alignment: 64)
        defer { raw.deallocate() }
        bytes.withUnsafeBytes { if let b = $0.baseAddress { (raw + offset).copyMemory(from: b, byteCount: $0.count) } }
        return body(UnsafeRawBufferPointer(start: raw + offset, count: bytes.count))
    }

    func testRFC3720() {
        for (name, f) in Self.paths {
            func crc(_ b: [UInt8]) -> UInt32 { b.withUnsafeBytes { f($0, 0) } }
            XCTAssertEqual(crc(Array("123456789".utf8)), 0xE306_9283, name)
            XCTAssertEqual(crc([UInt8](repeating: 0, count: 32)), 0x8A91_36AA, name)
            XCTAssertEqual(crc([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43, name)
            XCTAssertEqual(crc((0..<32).map { UInt8($0) }), 0x46DD_794E, name)
            XCTAssertEqual(crc((0..<32).reversed().map { UInt8($0) }), 0x113F_DB5C, name)
        }
    }

    /// Lengths 0...100 at every start offset 0...8, on every path.
    func testLengths0To100UnalignedStarts() {
        XCTAssertEqual(Self.small.count, 101)
        for n in 0...100 {
            let data = Self.pattern(n)
            for offset in 0...8 {
                Self.withOffset(data, offset) { b in
                    for (name, f) in Self.paths {
                        XCTAssertEqual(f(b, 0), Self.small[n], "\(name) length \(n) offset \(offset)")
                    }
                }
            }
        }
    }

    func testPatternAndLargeRandomBuffers() {
        let big = Self.random(Self.randomVectors.map(\.0).max()!)
        let cases = Self.patternVectors.map { (Self.pattern($0.0), $0.1, "pattern(\($0.0))") }
            + Self.randomVectors.map { (Array(big[0..<$0.0]), $0.1, "random(\($0.0))") }
        for (data, expected, label) in cases {
            for offset in [0, 1, 3, 7, 13] {
                Self.withOffset(data, offset) { b in
                    for (name, f) in Self.paths {
                        XCTAssertEqual(f(b, 0), expected, "\(name) \(label) offset \(offset)")
                    }
                }
            }
        }
    }

    /// Continuing a CRC across any split gives the one-pass value, on every path (also what CRC32CStream does).
    func testIncrementalSplits() {
        var rng = SeededRNG(seed: 5)
        let (n, expected) = Self.randomVectors[Self.randomVectors.count - 2]   // 65549 bytes
        let data = Self.random(n)
        data.withUnsafeBytes { b in
            for (name, f) in Self.paths {
                for _ in 0..<20 {
                    var crc: UInt32 = 0, at = 0
                    while at < n {
                        let k = min(n - at, Int.random(in: 0...3000, using: &rng))
                        crc = f(UnsafeRawBufferPointer(rebasing: b[at..<(at + k)]), crc)
                        at += k
                    }
                    XCTAssertEqual(crc, expected, name)
                }
            }
            var s = CRC32CStream()
            var got = 0
            while got < n {
                got = min(n, got + Int.random(in: 1...70_000, using: &rng))
                s.consume(b.baseAddress!, upTo: got)
            }
            XCTAssertEqual(s.value, expected)
            XCTAssertEqual(s.consumed, n)
        }
    }

    /// Random lengths and offsets: every path agrees with the portable one.
    func testPathsAgreeOnRandomInputs() {
        var rng = SeededRNG(seed: 9)
        let data = Self.random(70_000)
        data.withUnsafeBytes { b in
            for _ in 0..<300 {
                let start = Int.random(in: 0..<64, using: &rng)
                let n = Int.random(in: 0...(data.count - start), using: &rng) >> Int.random(in: 0...8, using: &rng)
                let slice = UnsafeRawBufferPointer(rebasing: b[start..<(start + n)])
                let seed = UInt32(truncatingIfNeeded: rng.next())
                let want = CRC32C.portableChecksum(slice, crc: seed)
                XCTAssertEqual(CRC32C.checksum(slice, crc: seed), want, "n \(n) start \(start)")
                XCTAssertEqual(CRC32C.sse42Checksum(slice, crc: seed), want, "n \(n) start \(start)")
            }
        }
    }
}
