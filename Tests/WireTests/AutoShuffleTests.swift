import XCTest
@testable import Wire

/// The byte shuffle only helps LZ4: when the automatic decision sends a shard raw, the shard is not shuffled
/// (header flag 0), and it still decodes exactly; trial shards are shuffled and compressed as asked.
final class AutoShuffleTests: XCTestCase {
    func testAutoSkipsTheShuffleWhenItSendsRaw() throws {
        let codec = ShardCodec()
        // Incompressible, a slow codec and a fast link: LZ4 does not pay.
        codec.auto.observeCompression(raw: 1 << 20, compressed: 1 << 20, seconds: 1e-3)
        codec.auto.observeLink(bytes: 1 << 30, seconds: 1e-3)
        XCTAssertFalse(codec.auto.compressionPays)
        var seed: UInt64 = 3
        let data = (0..<4096).map { _ -> Float in   // random mantissas: LZ4 finds nothing even after the shuffle
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Float(bitPattern: 0x3F80_0000 | UInt32(truncatingIfNeeded: seed >> 41))
        }
        var shuffled = 0
        for _ in 0..<AutoCompression.trialInterval {
            let b = WireBuffer()
            try data.withUnsafeBufferPointer {
                _ = try codec.encode($0.baseAddress!, count: data.count,
                                     options: ShardOptions(dtype: .f32, shuffle: true, compression: .auto), into: b)
            }
            let header = Array(b.bytes.prefix(ShardView.headerSize))
            if header[1] == 1 { shuffled += 1 } else { XCTAssertEqual(header[2], 0, "a raw shard is not compressed") }
            var r = WireReader(b.bytes)
            let view = try ShardView.read(from: &r, expectedCount: data.count, field: "test")
            var out = [Float](repeating: 0, count: data.count)
            try out.withUnsafeMutableBufferPointer { _ = try codec.decode(view, into: $0.baseAddress!) }
            XCTAssertEqual(out, data)
        }
        XCTAssertEqual(shuffled, 1, "only the periodic LZ4 trial is shuffled")
    }
}
