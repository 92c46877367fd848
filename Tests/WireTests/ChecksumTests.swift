import XCTest
@testable import Wire

/// Known-answer vectors. CRC32C: RFC 3720 §B.4 and the check value of "123456789"; the pattern vectors and all
/// XXH64 values come from tools/wire_vectors.py (libxxhash through ctypes, and a bit-at-a-time CRC32C).
final class ChecksumTests: XCTestCase {
    static func pattern(_ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 * 31 + 7) } }

    static let vectors: [(Int, UInt64, UInt32)] = [
        (0, 0xEF46DB3751D8E999, 0x00000000),
        (1, 0xA96C7F0CE858BBB7, 0x86B737BA),
        (3, 0x56E6957632A487F9, 0x765A7C83),
        (4, 0xC60D15B1E3FF8F04, 0x65F1C5DC),
        (7, 0xAFBEFC3D6C6F9A8E, 0x5110A112),
        (8, 0x3DA5C7AA269683E0, 0x40795C72),
        (15, 0xAE2A37EB9357CAA7, 0x9B0C1517),
        (16, 0xA19AD429B02BC413, 0xCF7845A4),
        (31, 0x4A74F3A1A39AD4A1, 0x17430993),
        (32, 0x8D57D6A4671CC43D, 0x9AC661B0),
        (33, 0x62C9FD21ED857664, 0xD7082B08),
        (63, 0x5C320A0D2707057F, 0xD7013350),
        (64, 0x7BBABBC45729D17E, 0x2B1D65D8),
        (100, 0xEFA0AD2D3E70C151, 0xE26C441C),
        (255, 0x2C3DB4BB567F731E, 0x0FD95F5E),
        (1000, 0x99594F4828043D35, 0xFF52EE97),
        (4097, 0xD42496BBBECACB1D, 0xEFBF0598),
    ]

    func testCRC32CRFC3720() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8($0) }), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum((0..<32).reversed().map { UInt8($0) }), 0x113F_DB5C)
    }

    func testCRC32CPatternsAndIncremental() {
        for (n, _, crc) in Self.vectors {
            let data = Self.pattern(n)
            XCTAssertEqual(CRC32C.checksum(data), crc, "length \(n)")
            // Continuing across a split gives the same value as one pass.
            let k = n / 3
            data.withUnsafeBytes { b in
                let first = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[0..<k]))
                XCTAssertEqual(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[k...]), crc: first), crc, "split \(n)")
            }
        }
    }

    func testXXH64Vectors() {
        XCTAssertEqual(XXH64.hash(Array("abc".utf8)), 0x44BC_2CF5_AD77_0999)
        XCTAssertEqual(XXH64.hash(Array("123456789".utf8)), 0x8CB8_41DB_40E6_AE83)
        for (n, h, _) in Self.vectors {
            XCTAssertEqual(XXH64.hash(Self.pattern(n)), h, "length \(n)")
        }
        XCTAssertEqual(XXH64.hash(Self.pattern(100), seed: 0x9E37_79B9_7F4A_7C15), 0xBC7A_B33B_E752_8C18)
    }

    func testUnalignedInput() {
        let data = Self.pattern(1001)
        data.withUnsafeBytes { b in
            let tail = UnsafeRawBufferPointer(rebasing: b[1...])
            XCTAssertEqual(CRC32C.checksum(tail), CRC32C.checksum(Array(data[1...])))
            XCTAssertEqual(XXH64.hash(tail), XXH64.hash(Array(data[1...])))
        }
    }
}

extension ChecksumTests {
    /// Feeding a message in arbitrary pieces gives the one-shot hash.
    func testXXH64StreamMatchesOneShot() {
        var rng = SeededRNG(seed: 77)
        for (n, h, _) in Self.vectors {
            let data = Self.pattern(n)
            data.withUnsafeBytes { b in
                let base = b.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!
                var s = XXH64Stream()
                var got = 0
                while got < n {
                    got = min(n, got + Int.random(in: 1...70, using: &rng))
                    s.consume(base, upTo: got)
                }
                XCTAssertEqual(s.finish(base, length: n), h, "length \(n)")
            }
        }
    }
}
