import Tensor
import DiT
import Foundation
import Metrics
@testable import Training
import XCTest

/// FID-digits: the feature → moments → Fréchet-distance pipeline against numpy/scipy (tools/make_classifier_fixtures.py:
/// float64 features of the same MLP, np.cov, scipy.linalg.sqrtm), the reference cache, the bootstrap interval and
/// the finite-sample floor of the shipped feature net.
final class DigitsFIDTests: XCTestCase {
    static let fixtures = Bundle.module.resourceURL!.appendingPathComponent("Fixtures")

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("digits-fid-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Both FDs within 1e-4 relative of the float64 reference (Float32 features; the FD itself is float64 here and
    /// there, and sqrtm versus the symmetric eigen route agree to ~1e-10 on these well-conditioned sets).
    func testPipelineMatchesNumpyReference() throws {
        let path = Self.fixtures.appendingPathComponent("fd_digits.safetensors").path
        let f = try SafetensorsFile(path: path)
        let net = MLPClassifier(widths: f.metadata["widths"]!.split(separator: ",").map { Int($0)! })
        for s in net.params.specs {
            let v = try f.floats("param." + s.key)
            v.withUnsafeBufferPointer { net.params[s.key].update(from: $0.baseAddress!, count: v.count) }
        }
        let fid = try DigitsFID(featureNet: net, referenceImages: try f.floats("images_b"), cacheDirectory: nil)
        let r = try fid.evaluate(try f.floats("images_a"), bootstrap: 0)
        let refFeatures = Double(f.metadata["fd_features"]!)!, refPixels = Double(f.metadata["fd_pixels"]!)!
        XCTAssertEqual(r.sampleCount, 100)
        XCTAssertLessThanOrEqual(abs(r.fidDigits.value - refFeatures) / refFeatures, 1e-4, "FID-digits \(r.fidDigits.value) vs numpy \(refFeatures)")
        XCTAssertLessThanOrEqual(abs(r.pixelFD.value - refPixels) / refPixels, 1e-4, "pixel FD \(r.pixelFD.value) vs numpy \(refPixels)")
    }

    /// The reference moments are written once, read back bit-identical, and keyed by the weights: changing one
    /// weight changes the key (and so the file).
    func testReferenceCacheIsKeyedByContent() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let net = MLPClassifier(widths: [64, 12, 6, 10], seed: 4)
        var rng = SplitMix64(seed: 3)
        let images = (0..<(40 * 64)).map { _ in 2 * rng.nextUnitFloat() - 1 }
        let a = try DigitsFID(featureNet: net, referenceImages: images, cacheDirectory: dir)
        XCTAssertFalse(a.loadedFromCache)
        XCTAssertTrue(FileManager.default.fileExists(atPath: a.cacheFile!.path))
        let b = try DigitsFID(featureNet: net, referenceImages: images, cacheDirectory: dir)
        XCTAssertTrue(b.loadedFromCache)
        XCTAssertEqual(a.referenceKey, b.referenceKey)
        XCTAssertEqual(a.featureReference.mean, b.featureReference.mean)
        XCTAssertEqual(a.featureReference.covariance, b.featureReference.covariance)
        XCTAssertEqual(a.pixelReference.covariance, b.pixelReference.covariance)
        net.params.values[0] += 1e-3
        let c = try DigitsFID(featureNet: net, referenceImages: images, cacheDirectory: dir)
        XCTAssertFalse(c.loadedFromCache)
        XCTAssertNotEqual(c.referenceKey, a.referenceKey)
    }

    /// Shipped feature net: held-out accuracy as recorded (≥ 0.95); the floor (300 train digits vs the held-out
    /// reference) is positive and below a third of the FD of the last 300 train digits with N(0, 0.75²) noise added,
    /// whose bootstrap interval contains its point estimate, is ordered and positive.
    func testBundledFloorAndBootstrap() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (train, heldOut) = try DigitsDataset.bundled().split()
        let fid = try DigitsFID.bundled(cacheDirectory: dir)
        XCTAssertEqual(fid.referenceCount, 300)
        XCTAssertGreaterThanOrEqual(DigitFeatureNet.accuracy(fid.featureNet, on: heldOut), 0.95)

        let floor = try fid.floor(train: train, count: 300, bootstrap: 20, seed: 1)
        XCTAssertGreaterThan(floor.fidDigits.value, 0)
        XCTAssertGreaterThan(floor.pixelFD.value, 0)

        var rng = SplitMix64(seed: 8)
        var noisy = train.subset(Array(train.count - 300 ..< train.count)).pixels
        for i in noisy.indices {
            let u1 = max(Double(rng.nextUnitFloat()), 1e-7), u2 = Double(rng.nextUnitFloat())
            noisy[i] += Float(0.75 * (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
        }
        let r = try fid.evaluate(noisy, bootstrap: 40, seed: 2)
        for (name, e, fl) in [("FID-digits", r.fidDigits, floor.fidDigits), ("pixel FD", r.pixelFD, floor.pixelFD)] {
            XCTAssertGreaterThan(e.value, 3 * fl.value, "\(name): noisy digits \(e.value) vs floor \(fl.value)")
            XCTAssertGreaterThan(e.lower, 0, name)
            XCTAssertLessThan(e.lower, e.upper, name)
            XCTAssertLessThanOrEqual(e.lower, e.value, "\(name): interval [\(e.lower), \(e.upper)] vs \(e.value)")
            XCTAssertGreaterThanOrEqual(e.upper, e.value, "\(name): interval [\(e.lower), \(e.upper)] vs \(e.value)")
            XCTAssertEqual(e.resamples, 40)
        }
    }
}
