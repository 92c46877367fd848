import Foundation
import Formats
import Metrics
import Tensor
import Vision
import XCTest
@testable import FID

/// Image sets through the seeded FID Inception into statistics: the streamed, batched, cached pipeline equals an
/// independent computation (each image alone through FIDInception, then the two-pass GaussianMoments). The
/// Inception itself is checked against pytorch-fid in VisionTests.
final class PipelineTests: XCTestCase {
    static func fixture(_ name: String) -> String { FormatsTests.fixture(name) }
    static let extractor = FIDFeatureExtractor(weights: FIDInceptionWeights(seed: 7), identity: "seed:7", maxBatch: 4)

    /// A folder with PNGs of two sizes (7×5 and 16×12 written from samples.npz would need an encoder; the fixtures'
    /// 7×5 images are used) plus a non-image file that is ignored.
    func makeFolder() throws -> String {
        let dir = NSTemporaryDirectory() + "/moebench-pngs-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for n in ["rgb8", "gray8", "palette8", "filter3", "rgba8"] {
            try FileManager.default.copyItem(atPath: Self.fixture("png/\(n).png"), toPath: dir + "/\(n).png")
        }
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: dir + "/ckpt.pt"))
        return dir
    }

    /// Features of each image alone (batch 1), in the folder's name order.
    func independentFeatures(_ images: [(rgb: [UInt8], h: Int, w: Int)]) -> [Float] {
        var out = [Float]()
        for img in images {
            let net = FIDInception(weights: Self.extractor.weights, imageHeight: img.h, imageWidth: img.w, maxBatch: 1)
            var chw = [UInt8](repeating: 0, count: img.rgb.count)
            let plane = img.h * img.w
            for p in 0..<plane { for c in 0..<3 { chw[c * plane + p] = img.rgb[3 * p + c] } }
            var f = [Float](repeating: 0, count: 2048)
            net.features(pixels: chw, batch: 1, into: &f)
            out += f
        }
        return out
    }

    /// Tolerance: mean and covariance 1e-9 relative (batched Inception gives the same features as batch 1 up to
    /// Float32 GEMM blocking; the moments are Float64).
    func testFolderStatisticsEqualIndependentComputation() throws {
        let dir = try makeFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let set = try ImageSet(path: dir)
        XCTAssertEqual(set.count, 5)
        let builder = FIDStatisticsBuilder(extractor: Self.extractor, cache: nil)
        let stats = try builder.statistics(of: set, keepFeatures: true)
        let names = ["filter3", "gray8", "palette8", "rgb8", "rgba8"]
        let images = try names.map { n -> ([UInt8], Int, Int) in let p = try PNGImage(path: dir + "/\(n).png"); return (p.rgb, p.height, p.width) }
        let feats = independentFeatures(images.map { (rgb: $0.0, h: $0.1, w: $0.2) })
        let ref = GaussianMoments(samples: feats, dimension: 2048)
        let eMean = FIDStatisticsTests.relErr(stats.moments.mean, ref.mean), eCov = FIDStatisticsTests.relErr(stats.moments.covariance, ref.covariance)
        let eFeat = FIDStatisticsTests.relErr(stats.features!.map(Double.init), feats.map(Double.init))
        print("folder pipeline vs independent: features \(eFeat), mean \(eMean), covariance \(eCov) (tolerance 1e-5, 1e-9 on moments of the same features)")
        XCTAssertLessThanOrEqual(eFeat, 1e-5)
        let again = GaussianMoments(samples: stats.features!, dimension: 2048)
        XCTAssertLessThanOrEqual(FIDStatisticsTests.relErr(stats.moments.covariance, again.covariance), 1e-9)
        XCTAssertLessThanOrEqual(eMean, 1e-5); XCTAssertLessThanOrEqual(eCov, 1e-4)
    }

    /// An ADM-style `arr_0` batch (NHWC uint8) equals the same images fed one at a time; the cache returns the
    /// stored statistics on the second call and recomputes after corruption.
    func testNPZBatchAndCache() throws {
        let set = try ImageSet(path: Self.fixture("samples.npz"))
        XCTAssertEqual(set.count, 6)
        let cacheDir = NSTemporaryDirectory() + "/moebench-fidcache-p-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: cacheDir) }
        let cache = FIDStatsCache(directory: cacheDir)
        let builder = FIDStatisticsBuilder(extractor: Self.extractor, cache: cache)
        var messages = [String](), batches = 0
        builder.log = { messages.append($0) }
        builder.progress = { _, _ in batches += 1 }
        let first = try builder.statistics(of: set, keepFeatures: true)
        XCTAssertEqual(batches, 2)  // 6 images in batches of 4
        // Images 0 and 5 (first of the first batch, last of the short second batch) alone from the NHWC bytes.
        let arr = try NumpyArchive(path: Self.fixture("samples.npz")).array("arr_0")
        let per = 16 * 12 * 3
        let feats = independentFeatures([0, 5].map { (rgb: Array(arr.bytes[($0 * per)..<(($0 + 1) * per)]), h: 16, w: 12) })
        let mine = Array(first.features![0..<2048]) + Array(first.features![(5 * 2048)..<(6 * 2048)])
        let eFeat = FIDStatisticsTests.relErr(mine.map(Double.init), feats.map(Double.init))
        XCTAssertEqual(FIDStatisticsTests.relErr(first.moments.mean, GaussianMoments(samples: first.features!, dimension: 2048).mean), 0, accuracy: 1e-12)
        print("npz arr_0 pipeline vs independent: features \(eFeat) (tolerance 1e-5)")
        XCTAssertLessThanOrEqual(eFeat, 1e-5)
        let second = try builder.statistics(of: set, keepFeatures: true)
        XCTAssertEqual(batches, 2, "the second call recomputed instead of using the cache")
        XCTAssertTrue(messages.contains { $0.contains("from the cache") }, "\(messages)")
        XCTAssertEqual(second.moments.covariance, first.moments.covariance)
        XCTAssertEqual(second.features?.count, 6 * 2048)
        // Corrupt the entry: detected, recomputed, rewritten.
        let key = FIDStatsCache.key(content: try set.contentDigest(), network: "seed:7")
        var bytes = [UInt8](FileManager.default.contents(atPath: cache.path(key))!)
        bytes[bytes.count / 2] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: cache.path(key)))
        let third = try builder.statistics(of: set, keepFeatures: false)
        XCTAssertEqual(batches, 4)
        XCTAssertTrue(messages.contains { $0.contains("not used, recomputing") }, "\(messages)")
        XCTAssertEqual(third.moments.mean, first.moments.mean)
        guard case .hit = cache.load(key, needFeatures: true) else { return XCTFail("entry not rewritten") }
    }

    func testImageSetRefusals() throws {
        let dir = NSTemporaryDirectory() + "/moebench-jpg-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertThrowsError(try ImageSet(path: dir)) { XCTAssertTrue("\($0)".contains("no *.png"), "\($0)") }
        try Data([0xFF, 0xD8]).write(to: URL(fileURLWithPath: dir + "/a.jpg"))
        XCTAssertThrowsError(try ImageSet(path: dir)) { XCTAssertTrue("\($0)".contains("a.jpg") && "\($0)".contains("PNG"), "\($0)") }
        XCTAssertThrowsError(try ImageSet(path: Self.fixture("savez.npz"))) { XCTAssertTrue("\($0)".contains("arr_0"), "\($0)") }
        XCTAssertThrowsError(try ImageSet(path: "/nonexistent/x")) { XCTAssertTrue("\($0)".contains("/nonexistent/x")) }
        try FileManager.default.removeItem(atPath: dir + "/a.jpg")
        try FileManager.default.copyItem(atPath: Self.fixture("png/interlaced.png"), toPath: dir + "/i.png")
        try FileManager.default.copyItem(atPath: Self.fixture("png/rgb8.png"), toPath: dir + "/j.png")
        let set = try ImageSet(path: dir)
        let builder = FIDStatisticsBuilder(extractor: Self.extractor, cache: nil)
        XCTAssertThrowsError(try builder.statistics(of: set, keepFeatures: false)) {
            XCTAssertTrue("\($0)".contains("i.png") && "\($0)".contains("interlaced"), "\($0)")
        }
    }
}
