import Foundation
import XCTest
@testable import Wire

/// Decoded-size limits checked on declared counts before anything is sized or decompressed.
final class LimitTests: XCTestCase {
    /// A valid LZ4 block of `count` (≥ 25) zero bytes in about `count / 255` bytes (one literal, one long match at
    /// offset 1, five closing literals).
    func lz4ZeroBlock(_ count: Int) -> [UInt8] {
        var rest = count - 6 - 4 - 15
        var out: [UInt8] = [0x1F, 0x00, 0x01, 0x00]
        while rest >= 255 { out.append(0xFF); rest -= 255 }
        out.append(UInt8(rest))
        return out + [0x50, 0, 0, 0, 0, 0]
    }

    /// EXPERT payload of one group with an LZ4 activations shard `block` claiming `rows × dim` F32 values.
    func bombPayload(rows: Int, dim: Int, block: [UInt8], storedLength: Int? = nil) -> [UInt8] {
        let b = WireBuffer()
        b.append(UInt32(0)); b.append(UInt32(dim)); b.append(UInt32(1)); b.append(UInt32(0)); b.append(UInt32(rows))
        b.append(UInt8(0)); b.append(UInt8(0)); b.append(UInt8(1)); b.append(UInt8(0))
        b.append(UInt32(rows * dim)); b.append(UInt32(storedLength ?? block.count)); b.append(bytes: block)
        b.append(UInt8(0)); b.append(UInt8(0)); b.append(UInt8(0)); b.append(UInt8(0))
        b.append(UInt32(rows)); b.append(UInt32(rows * 4)); b.append(bytes: [UInt8](repeating: 0, count: rows * 4))
        return Array(b.bytes)
    }

    func testTheCraftedZeroBlockIsValidLZ4() throws {
        let n = 100_000
        let block = lz4ZeroBlock(n * 4)
        var out = [Float](repeating: 1, count: n)
        try block.withUnsafeBytes { raw in
            try ShardCodec().decode(ShardView(dtype: .f32, shuffle: false, compressed: true, elementCount: n, stored: raw), into: &out)
        }
        XCTAssertEqual(out.filter { $0 != 0 }.count, 0)
    }

    /// Declared rows × dim × 4 above `maxDecodedBytes` is refused by the decoder; the same counts below it pass.
    func testDeclaredDecodedSizeAboveTheLimitIsRefused() throws {
        let dim = 64, rows = 4096                            // 1 MiB of F32
        let payload = bombPayload(rows: rows, dim: dim, block: lz4ZeroBlock(rows * dim * 4))
        var groups: [ExpertGroup] = []
        let small = WireLimits(maxPayload: 256 << 20, maxDecodedBytes: 1 << 19)
        XCTAssertThrowsError(try payload.withUnsafeBytes { try ExpertMessage.decodeRequest($0, groups: &groups, limits: small) }) { e in
            guard case .malformed(let field, let reason)? = e as? WireError else { return XCTFail("\(e)") }
            XCTAssertEqual(field, "expert.groups")
            XCTAssertTrue(reason.contains("1048576 bytes"), reason)
            XCTAssertTrue(reason.contains("limit of 524288 bytes"), reason)
        }
        let view = try payload.withUnsafeBytes { try ExpertMessage.decodeRequest($0, groups: &groups, limits: .default) }
        XCTAssertEqual(view.totalRows, rows)
        // The default limit refuses what used to be accepted: 2^20 rows × 64 = 256 MiB from a ~1 MiB block.
        XCTAssertGreaterThanOrEqual(WireLimits.default.maxDecodedBytes, 4096 * 1152 * 4, "a batch of 16 XL images fits")
        XCTAssertLessThan(WireLimits.default.maxDecodedBytes, 256 << 20)
    }

    /// An LZ4 shard claiming more than 255× its stored bytes cannot be valid and is refused without decoding;
    /// the most compressible real data stays within the bound.
    func testLZ4ShardClaimingImpossibleExpansionIsRefused() throws {
        var groups: [ExpertGroup] = []
        let lie = bombPayload(rows: 1024, dim: 64, block: [UInt8](repeating: 0, count: 100))
        XCTAssertThrowsError(try lie.withUnsafeBytes { try ExpertMessage.decodeRequest($0, groups: &groups) }) { e in
            guard case .malformed(let field, let reason)? = e as? WireError else { return XCTFail("\(e)") }
            XCTAssertEqual(field, "expert.activations.storedLength")
            XCTAssertTrue(reason.contains("cannot decode to 262144 bytes"), reason)
        }
        let zeros = [Float](repeating: 0, count: 1 << 20)
        let b = WireBuffer()
        let codec = ShardCodec()
        let info = try codec.encode(zeros, count: zeros.count, options: ShardOptions(dtype: .f32, shuffle: true, compression: .lz4), into: b)
        XCTAssertTrue(info.compressed)
        var r = WireReader(b.bytes)
        let shard = try ShardView.read(from: &r, expectedCount: zeros.count, field: "t")
        var out = [Float](repeating: 1, count: zeros.count)
        try codec.decode(shard, into: &out)
        XCTAssertEqual(out, zeros)
    }
}
