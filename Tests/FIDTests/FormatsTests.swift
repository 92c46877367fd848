import Foundation
import XCTest
@testable import Formats

/// numpy-written `.npz`/`.npy` files and zlib-encoded PNGs (tools/make_fid_fixtures.py) read by the Swift readers.
/// All comparisons are exact: these are byte formats.
final class FormatsTests: XCTestCase {
    static func fixture(_ name: String) -> String { Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil)!.path }

    func testSavezStoredEntries() throws {
        let a = try NumpyArchive(path: Self.fixture("savez.npz"))
        XCTAssertEqual(a.names, ["mu", "sigma", "labels", "f4", "i8", "scalar"])
        let labels = try a.array("labels")
        XCTAssertEqual(labels.dtype, .uint8); XCTAssertEqual(labels.shape, [3]); XCTAssertEqual(labels.bytes, [0, 7, 255])
        let f4 = try a.array("f4")
        XCTAssertEqual(f4.dtype, .float32); XCTAssertEqual(f4.shape, [2, 3])
        XCTAssertEqual(f4.floats(), [1.5, -2.25, 3e-8, 4, 5, 6])
        XCTAssertEqual(try a.array("i8").doubles(), [-3, 0, 5, Double(1 << 40)])
        let scalar = try a.array("scalar")
        XCTAssertEqual(scalar.shape, []); XCTAssertEqual(scalar.doubles(), [2.5])
        XCTAssertEqual(try a.array("sigma").shape, [5, 5])
        XCTAssertThrowsError(try a.array("nope")) { XCTAssertTrue("\($0)".contains("no array 'nope'") && "\($0)".contains("savez.npz")) }
    }

    /// `np.savez_compressed`: dynamic-Huffman (ramp), stored-in-DEFLATE (noise) and fixed-Huffman (tiny) blocks; the
    /// same mu/sigma as the stored archive, bit for bit.
    func testSavezCompressedEntries() throws {
        let c = try NumpyArchive(path: Self.fixture("compressed.npz")), s = try NumpyArchive(path: Self.fixture("savez.npz"))
        XCTAssertEqual(try c.array("mu"), try s.array("mu"))
        XCTAssertEqual(try c.array("sigma"), try s.array("sigma"))
        XCTAssertEqual(try c.array("ramp").bytes, (0..<4096).map { UInt8($0 % 251) })
        XCTAssertEqual(try c.array("noise").count, 3000)  // its CRC-32 is checked on read
        XCTAssertEqual(try c.array("tiny").bytes, [1, 2, 3, 2, 1])
        XCTAssertEqual(c.zip.entries.map(\.method), [8, 8, 8, 8, 8])
    }

    func testNpyFormatVersion2() throws {
        let data = [UInt8](FileManager.default.contents(atPath: Self.fixture("v2.npy"))!)
        XCTAssertEqual(data[6], 2)
        let a = try NumpyArray(npy: data, file: "v2.npy")
        XCTAssertEqual(a.shape, [3, 2]); XCTAssertEqual(a.floats(), [0, 0.25, 0.5, 0.75, 1, 1.25])
    }

    func testWrittenArchiveRoundTripsAndHasNumpysHeader() throws {
        let path = NSTemporaryDirectory() + "/moebench-npz-\(getpid()).npz"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let mu = NumpyArray(float64: [1, -2.5, 3e-300], shape: [3])
        let img = NumpyArray(uint8: Array(0..<24), shape: [1, 2, 4, 3])
        try NumpyArchive.write([("mu", mu), ("img", img)], to: path)
        let back = try NumpyArchive(path: path)
        XCTAssertEqual(try back.array("mu"), mu); XCTAssertEqual(try back.array("img"), img)
        let npy = mu.npy()
        let headerLength = Int(npy[8]) | Int(npy[9]) << 8
        XCTAssertEqual((10 + headerLength) % 64, 0)
        XCTAssertEqual(String(decoding: npy[10..<(10 + headerLength)], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines),
                       "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }")
        // numpy itself reads it back, when python3 with numpy is on this machine.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import numpy as np, sys; a = np.load(sys.argv[1]); assert a['mu'].tolist() == [1, -2.5, 3e-300]; assert a['img'].shape == (1, 2, 4, 3) and a['img'].dtype == np.uint8 and a['img'].ravel().tolist() == list(range(24))", path]
        if (try? p.run()) != nil {
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0, "numpy could not read the archive moebench wrote")
        }
    }

    func testCorruptArchivesAreErrorsNamingTheFile() throws {
        var bytes = [UInt8](FileManager.default.contents(atPath: Self.fixture("compressed.npz"))!)
        let a = try NumpyArchive(data: Data(bytes), path: "x.npz")
        let e = a.zip.entry("ramp.npy")!
        // Flip one byte inside the ramp's compressed data: inflate fails or the CRC-32 does not match.
        let start = try NumpyArchive(data: Data(bytes), path: "x.npz").zip.contents(e).count  // entry readable before
        XCTAssertEqual(start, e.uncompressedSize)
        let local = e.localHeaderOffset
        let dataStart = local + 30 + (Int(bytes[local + 26]) | Int(bytes[local + 27]) << 8) + (Int(bytes[local + 28]) | Int(bytes[local + 29]) << 8)
        bytes[dataStart + e.compressedSize / 2] ^= 0x5A
        let broken = try NumpyArchive(data: Data(bytes), path: "broken.npz")
        XCTAssertThrowsError(try broken.array("ramp")) { err in
            XCTAssertTrue("\(err)".hasPrefix("broken.npz"), "\(err)")
            XCTAssertTrue("\(err)".contains("CRC-32") || "\(err)".contains("DEFLATE"), "\(err)")
        }
        let full = [UInt8](FileManager.default.contents(atPath: Self.fixture("savez.npz"))!)
        XCTAssertThrowsError(try NumpyArchive(data: Data(full.prefix(full.count / 2)), path: "half.npz")) {
            XCTAssertTrue("\($0)".contains("half.npz") && "\($0)".contains("end-of-central-directory"), "\($0)")
        }
    }

    func testInflateRejectsGarbageWithoutTrapping() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let junk = (0..<64).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = try? Inflate.inflate(junk)
        }
        XCTAssertThrowsError(try Inflate.inflate([0x07])) { XCTAssertTrue("\($0)".contains("reserved")) }
        XCTAssertThrowsError(try Inflate.inflate([0x01, 0x05, 0x00, 0xFA, 0xFF, 1, 2])) { XCTAssertTrue("\($0)".contains("truncated")) }
    }

    /// A dynamic block whose distance code has no symbols (all literals; RFC 1951 §3.2.7), hand-assembled; Python's
    /// zlib (`decompressobj(-15)`) decodes these bytes to "AA". zlib's own encoder never writes this, others may.
    func testDynamicBlockWithoutDistanceCodes() throws {
        let stream: [UInt8] = [5, 192, 1, 4, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                               0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128, 8]
        XCTAssertEqual(try Inflate.inflate(stream), Array("AA".utf8))
    }

    func testPNGColourTypesBitDepthsAndFilters() throws {
        let expected = try NumpyArchive(path: Self.fixture("png_expected.npz"))
        XCTAssertEqual(expected.names.count, 13)
        for name in expected.names {
            let want = try expected.array(name)
            let img = try PNGImage(path: Self.fixture("png/\(name).png"))
            XCTAssertEqual([img.height, img.width, 3], want.shape, name)
            XCTAssertEqual(img.rgb, want.bytes, name)
        }
    }

    func testPNGRefusals() {
        XCTAssertThrowsError(try PNGImage(path: Self.fixture("png/interlaced.png"))) {
            XCTAssertTrue("\($0)".contains("interlaced.png") && "\($0)".contains("interlaced"), "\($0)")
        }
        XCTAssertThrowsError(try PNGImage(path: Self.fixture("png/bad_crc.png"))) {
            XCTAssertTrue("\($0)".contains("bad_crc.png") && "\($0)".contains("CRC-32"), "\($0)")
        }
        XCTAssertThrowsError(try PNGImage(data: Array("not a png".utf8), file: "t.png")) { XCTAssertTrue("\($0)".contains("signature")) }
    }
}
