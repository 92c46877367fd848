import Foundation
import Formats
import Metrics
import XCTest
@testable import FID

/// Streaming moments, FID and KID against numpy/scipy (tools/make_fid_fixtures.py: np.cov, pytorch-fid's
/// `calculate_frechet_distance` with scipy.linalg.sqrtm, torch-fidelity's unbiased polynomial MMD), and the
/// statistics file and cache.
final class FIDStatisticsTests: XCTestCase {
    static func fixture(_ name: String) -> String { FormatsTests.fixture(name) }

    static func relErr(_ a: [Double], _ b: [Double]) -> Double {
        let scale = b.map(abs).max()!
        return zip(a, b).map { abs($0 - $1) }.max()! / scale
    }

    var features: NumpyArchive { get throws { try NumpyArchive(path: Self.fixture("features.npz")) } }

    /// Uneven batches (7, 50, 1, 62) give numpy's mean and n−1 covariance. Tolerance 1e-12 relative (Float64
    /// accumulation of Float32 inputs; the two orders of summation differ only by round-off).
    func testStreamingMomentsMatchNumpy() throws {
        let f = try features
        let x = try f.array("x").floats()
        let s = StreamingMoments(dimension: 32)
        var at = 0
        for n in [7, 50, 1, 62] { x.withUnsafeBufferPointer { s.add($0.baseAddress! + at * 32, count: n) }; at += n }
        let m = s.moments()
        XCTAssertEqual(m.sampleCount, 120)
        let muErr = Self.relErr(m.mean, try f.array("mu_x").doubles()), sigmaErr = Self.relErr(m.covariance, try f.array("sigma_x").doubles())
        print("streaming moments vs numpy: mean \(muErr), covariance \(sigmaErr) (tolerance 1e-12)")
        XCTAssertLessThanOrEqual(muErr, 1e-12); XCTAssertLessThanOrEqual(sigmaErr, 1e-12)
    }

    /// Features offset by 1000 (|μ| ≫ spread): streaming per-batch centring keeps the covariance of the two-pass
    /// computation on the same Float32 data to 1e-9 relative; raw second moments would lose ~6 digits here.
    func testStreamingMomentsAreStableUnderALargeOffset() throws {
        let x = try features.array("x").floats().map { $0 + 1000 }
        let s = StreamingMoments(dimension: 32)
        for b in stride(from: 0, to: 120, by: 16) { x.withUnsafeBufferPointer { s.add($0.baseAddress! + b * 32, count: min(16, 120 - b)) } }
        let twoPass = GaussianMoments(samples: x, dimension: 32)
        let err = Self.relErr(s.moments().covariance, twoPass.covariance)
        print("streaming covariance at offset 1000 vs two-pass: \(err) (tolerance 1e-9)")
        XCTAssertLessThanOrEqual(err, 1e-9)
    }

    /// FID from the fixture's mu/sigma and from streamed features, against pytorch-fid's scipy sqrtm value.
    /// Tolerance 1e-9 relative: both are exact square roots in Float64 (symmetric eigen vs Schur), differing by round-off.
    func testFIDMatchesPytorchFIDsSqrtm() throws {
        let f = try features
        let ref = try f.array("fid").doubles()[0]
        let a = GaussianMoments(mean: try f.array("mu_x").doubles(), covariance: try f.array("sigma_x").doubles())
        let b = GaussianMoments(mean: try f.array("mu_y").doubles(), covariance: try f.array("sigma_y").doubles())
        let fromMoments = try FrechetDistance.between(a, b)
        let sx = StreamingMoments(dimension: 32), sy = StreamingMoments(dimension: 32)
        sx.add(try f.array("x").floats()); sy.add(try f.array("y").floats())
        let fromStream = try FIDScore.compute(FIDStatistics(moments: sx.moments(), features: nil),
                                              against: FIDStatistics(moments: sy.moments(), features: nil)).fid
        let e1 = abs(fromMoments - ref) / ref, e2 = abs(fromStream - ref) / ref
        print("FID vs scipy sqrtm (\(ref)): from moments \(e1), from streamed features \(e2) (tolerance 1e-9)")
        XCTAssertLessThanOrEqual(e1, 1e-9); XCTAssertLessThanOrEqual(e2, 1e-9)
    }

    /// KID per subset, mean and std against torch-fidelity's formula in Float64 on the same subsets. Tolerance 1e-5
    /// relative to the mean (our Gram matrices are Float32 GEMMs, as torch-fidelity's and clean-fid's).
    func testKIDMatchesTorchFidelityFormula() throws {
        let f = try features
        let x = try f.array("x").floats(), y = try f.array("y").floats()
        let ix = try f.array("kid_subsets_x").doubles().map { Int($0) }, iy = try f.array("kid_subsets_y").doubles().map { Int($0) }
        let subsets = (0..<5).map { s in (Array(ix[(s * 50)..<((s + 1) * 50)]), Array(iy[(s * 50)..<((s + 1) * 50)])) }
        let e = KernelInceptionDistance.estimate(x, y, dimension: 32, subsets: subsets)
        let mean = try f.array("kid_mean").doubles()[0], std = try f.array("kid_std").doubles()[0]
        let full = try f.array("kid_full").doubles()[0]
        let fullSwift = x.withUnsafeBufferPointer { xp in y.withUnsafeBufferPointer { KernelInceptionDistance.mmd2(xp.baseAddress!, $0.baseAddress!, count: 100, dimension: 32) } }
        let eMean = abs(e.mean - mean) / mean, eStd = abs(e.std - std) / mean, eFull = abs(fullSwift - full) / full
        print("KID vs torch-fidelity formula: mean \(eMean), std \(eStd), one subset of 100 \(eFull) (tolerance 1e-5)")
        XCTAssertLessThanOrEqual(eMean, 1e-5); XCTAssertLessThanOrEqual(eStd, 1e-5); XCTAssertLessThanOrEqual(eFull, 1e-5)
        XCTAssertEqual(e.subsets, 5); XCTAssertEqual(e.subsetSize, 50)
        // Random subsets: the defaults are 100 subsets of min(1000, n_x, n_y) rows, and seeded.
        let r = KernelInceptionDistance.estimate(x, y, dimension: 32)
        XCTAssertEqual(r.subsets, 100); XCTAssertEqual(r.subsetSize, 100)
        XCTAssertEqual(r, KernelInceptionDistance.estimate(x, y, dimension: 32))
        XCTAssertEqual(r.mean, mean, accuracy: 4 * std, "random-subset KID far from the fixture's")
    }

    /// pytorch-fid's compressed mu/sigma files and ADM-style files read; written files read back bit for bit.
    func testStatisticsFilesReadAndWrite() throws {
        let c = try FIDStatistics(path: Self.fixture("compressed.npz"))
        XCTAssertEqual(c.dimension, 5); XCTAssertNil(c.features)
        let path = NSTemporaryDirectory() + "/moebench-stats-\(getpid()).npz"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let f = try features
        let s = FIDStatistics(moments: GaussianMoments(mean: try f.array("mu_x").doubles(), covariance: try f.array("sigma_x").doubles(), sampleCount: 120),
                              features: try f.array("x").floats())
        try s.write(to: path)
        let back = try FIDStatistics(path: path)
        XCTAssertEqual(back.moments.mean, s.moments.mean); XCTAssertEqual(back.moments.covariance, s.moments.covariance)
        XCTAssertEqual(back.moments.sampleCount, 120); XCTAssertEqual(back.features, s.features)
        XCTAssertThrowsError(try FIDStatistics(path: Self.fixture("samples.npz"))) { XCTAssertTrue("\($0)".contains("'mu'") && "\($0)".contains("samples.npz"), "\($0)") }
        // A sigma of the wrong shape is named.
        try NumpyArchive.write([("mu", NumpyArray(float64: [0, 0], shape: [2])), ("sigma", NumpyArray(float64: [1, 0, 0], shape: [3]))], to: path)
        XCTAssertThrowsError(try FIDStatistics(path: path)) { XCTAssertTrue("\($0)".contains("'sigma' has shape [3]"), "\($0)") }
    }

    func testCacheHitsAndDetectsCorruptEntries() throws {
        let dir = NSTemporaryDirectory() + "/moebench-fidcache-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cache = FIDStatsCache(directory: dir)
        let key = FIDStatsCache.key(content: "abc", network: "seed:1")
        XCTAssertNotEqual(key, FIDStatsCache.key(content: "abc", network: "seed:2"))
        XCTAssertNotEqual(key, FIDStatsCache.key(content: "abc", network: "seed:1", preprocessing: "other"))
        guard case .miss = cache.load(key, needFeatures: false) else { return XCTFail("expected a miss") }
        let f = try features
        let s = FIDStatistics(moments: GaussianMoments(samples: try f.array("x").floats(), dimension: 32), features: try f.array("x").floats())
        try cache.store(key, s)
        guard case .hit(let h) = cache.load(key, needFeatures: true) else { return XCTFail("expected a hit") }
        XCTAssertEqual(h.moments.covariance, s.moments.covariance)
        // One flipped byte in the stored covariance: the entry's CRC-32 no longer matches.
        var bytes = [UInt8](FileManager.default.contents(atPath: cache.path(key))!)
        bytes[bytes.count / 3] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: cache.path(key)))
        guard case .unusable(let why) = cache.load(key, needFeatures: false) else { return XCTFail("corrupt entry used") }
        XCTAssertTrue(why.contains("CRC-32") || why.contains("corrupt"), why)
        // Truncated.
        try Data(bytes.prefix(100)).write(to: URL(fileURLWithPath: cache.path(key)))
        guard case .unusable = cache.load(key, needFeatures: false) else { return XCTFail("truncated entry used") }
        // A valid entry under another key's name.
        try cache.store(key, s)
        let other = FIDStatsCache.key(content: "abd", network: "seed:1")
        try FileManager.default.copyItem(atPath: cache.path(key), toPath: cache.path(other))
        guard case .unusable(let foreign) = cache.load(other, needFeatures: false) else { return XCTFail("foreign entry used") }
        XCTAssertTrue(foreign.contains("another key"), foreign)
        XCTAssertEqual(FIDStatsCache.defaultDirectory(environment: ["HOME": "/h"]), "/h/.cache/moebench/fid")
        XCTAssertEqual(FIDStatsCache.defaultDirectory(environment: ["HOME": "/h", "MOEBENCH_FID_CACHE": "/c"]), "/c")
    }
}
