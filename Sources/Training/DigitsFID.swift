import Diffusion
import DiT
import Foundation
import Metrics
import Tensor

/// The digit classifier whose last hidden layer gives FID-digits' features.
public enum DigitFeatureNet {
    public struct Options: Sendable, Equatable {
        public var training: MLPTrainingOptions
        public var hidden: [Int] = [128, 64]
        public var activation: MLPActivation = .relu
        public init() {
            training = MLPTrainingOptions()
            training.steps = 3000; training.batch = 128; training.lr = 1e-3; training.warmup = 100; training.weightDecay = 1e-4
        }
    }

    /// Trains on `train` (batches of uniformly drawn digits, cross-entropy on the label), seeded.
    public static func train(_ options: Options, on train: DigitsDataset,
                             onStep: (Int, Double) -> Void = { _, _ in }) throws -> MLPClassifier {
        let d = DigitsDataset.imageSize
        let net = MLPClassifier(widths: [d] + options.hidden + [DigitsDataset.classes], activation: options.activation,
                                name: "digit-feature-net", seed: options.training.seed)
        var rng = Xoshiro256(seed: options.training.seed ^ 0x6665_6174)  // "feat"
        try train.pixels.withUnsafeBufferPointer { data in
            try net.train(options.training, makeBatch: { _, x, y in
                for b in 0..<options.training.batch {
                    let i = Int(rng.next() % UInt64(train.count))
                    (x + b * d).update(from: data.baseAddress! + i * d, count: d)
                    y[b] = train.labels[i]
                }
            }, onStep: onStep)
        }
        return net
    }

    /// Fraction of `data` whose argmax class equals the label.
    public static func accuracy(_ net: MLPClassifier, on data: DigitsDataset) -> Double {
        var pred = [Int](repeating: 0, count: data.count)
        data.pixels.withUnsafeBufferPointer { net.predict($0.baseAddress!, batch: data.count, into: &pred) }
        return Double(zip(pred, data.labels).filter { $0 == Int($1) }.count) / Double(data.count)
    }

    /// The network shipped with moebench (`Resources/models/digit-feature-net.safetensors`).
    public static func bundled() throws -> MLPClassifier {
        try MLPClassifier.load(from: try bundledModelPath("digit-feature-net"), name: "digit-feature-net")
    }
}

/// FID-digits and pixel-space FD of one sample set.
public struct DigitsFIDReport: Codable, Sendable, Equatable {
    public var sampleCount: Int
    /// FD in the feature net's feature space ("FID-digits"; not Inception FID).
    public var fidDigits: FDEstimate
    /// FD of the raw 64 pixel values ([−1, 1] units).
    public var pixelFD: FDEstimate
}

/// FID-digits: Fréchet distance between the penultimate-layer features of a digit classifier trained on the train
/// split, for generated samples against the 300 held-out digits, plus the same distance on the 64 raw pixels. It
/// is not Inception FID and its values are not comparable with published FIDs. FD is biased upwards at small n
/// (FID∞, Chong & Forsyth 2020): compare values at one sample count, against `floor(train:count:)` at that count.
///
/// Images are `[n, 64]` Float32 in [−1, 1] pixel units (pixel/8 − 1), as `DigitsDataset`. Reference moments (mean,
/// n − 1 covariance, Float64) are cached in `cacheDirectory` under a content hash of the feature net's widths,
/// activation and weights and the reference images.
///
///     let fid = try DigitsFID.bundled()                            // cache in $MOEBENCH_CACHE or ~/.cache/moebench
///     let r = try fid.evaluate(samples)                            // [n, 64], B = 200 resamples, seed 0
///     let floor = try fid.floor(train: trainSplit, count: n)       // the same statistics for n real train digits
public final class DigitsFID {
    public let featureNet: MLPClassifier
    public let featureReference: GaussianMoments
    public let pixelReference: GaussianMoments
    /// 16 hex digits: FNV-1a 64 of (format tag, widths, activation, weights, reference images).
    public let referenceKey: String
    public let referenceCount: Int
    /// Where the reference moments were read from or written to (nil: no cache).
    public let cacheFile: URL?
    /// True when the reference moments came from the cache file.
    public let loadedFromCache: Bool

    public static var defaultCacheDirectory: URL {
        if let c = ProcessInfo.processInfo.environment["MOEBENCH_CACHE"] { return URL(fileURLWithPath: c) }
        return URL(fileURLWithPath: NSHomeDirectory()).appendingPathComponent(".cache/moebench")
    }

    public init(featureNet: MLPClassifier, referenceImages: [Float], cacheDirectory: URL?) throws {
        let d = DigitsDataset.imageSize
        precondition(featureNet.inputWidth == d, "DigitsFID: the feature net takes \(featureNet.inputWidth) inputs, images have \(d) pixels")
        precondition(referenceImages.count % d == 0 && referenceImages.count >= 2 * d, "DigitsFID: need ≥ 2 reference images of \(d) pixels")
        self.featureNet = featureNet
        referenceCount = referenceImages.count / d
        var h = FNV1a64()
        h.add(Array("digits-fid-v1".utf8))
        h.add(featureNet.widths.map { UInt64($0) })
        h.add(Array(featureNet.activation.rawValue.utf8))
        h.add(UnsafeRawBufferPointer(start: featureNet.params.values, count: featureNet.params.count * 4))
        referenceImages.withUnsafeBytes { h.add($0) }
        referenceKey = String(format: "%016llx", h.value)
        cacheFile = cacheDirectory?.appendingPathComponent("digits-fid-\(referenceKey).safetensors")
        if let file = cacheFile, FileManager.default.fileExists(atPath: file.path) {
            (featureReference, pixelReference) = try Self.readMoments(file.path, featureWidth: featureNet.featureWidth, pixels: d)
            loadedFromCache = true
        } else {
            let count = referenceImages.count / d
            let feats = referenceImages.withUnsafeBufferPointer { Self.features(featureNet, $0.baseAddress!, count: count) }
            featureReference = GaussianMoments(samples: feats, dimension: featureNet.featureWidth)
            pixelReference = GaussianMoments(samples: referenceImages, dimension: d)
            loadedFromCache = false
            if let file = cacheFile { try writeMoments(file) }
        }
    }

    /// The shipped feature net with the held-out split of the shipped digits as reference.
    public static func bundled(cacheDirectory: URL? = DigitsFID.defaultCacheDirectory) throws -> DigitsFID {
        let heldOut = try DigitsDataset.bundled().split().heldOut
        return try DigitsFID(featureNet: try DigitFeatureNet.bundled(), referenceImages: heldOut.pixels, cacheDirectory: cacheDirectory)
    }

    /// Last-hidden-layer features `[count, featureWidth]` of `count` images.
    public func features(_ images: [Float]) -> [Float] {
        precondition(images.count % DigitsDataset.imageSize == 0, "DigitsFID: \(images.count) values is not a whole number of 64-pixel images")
        return images.withUnsafeBufferPointer { Self.features(featureNet, $0.baseAddress!, count: images.count / DigitsDataset.imageSize) }
    }

    static func features(_ net: MLPClassifier, _ x: UnsafePointer<Float>, count: Int) -> [Float] {
        var out = [Float](repeating: 0, count: count * net.featureWidth)
        let chunk = 512, w = net.featureWidth
        var s = 0
        while s < count {
            let n = min(chunk, count - s)
            net.forward(x + s * DigitsDataset.imageSize, batch: n)
            out.withUnsafeMutableBufferPointer { ($0.baseAddress! + s * w).update(from: net.features, count: n * w) }
            s += n
        }
        return out
    }

    /// FID-digits and pixel FD of `images` (`[n, 64]`, n ≥ 2) with `bootstrap` seeded resamples each.
    public func evaluate(_ images: [Float], bootstrap: Int = 200, seed: UInt64 = 0) throws -> DigitsFIDReport {
        let d = DigitsDataset.imageSize, n = images.count / d
        precondition(n >= 2 && images.count == n * d, "DigitsFID: need ≥ 2 images of \(d) pixels, got \(images.count) values")
        let feats = features(images)
        return DigitsFIDReport(
            sampleCount: n,
            fidDigits: try Self.estimate(feats, dimension: featureNet.featureWidth, reference: featureReference, resamples: bootstrap, seed: seed),
            pixelFD: try Self.estimate(images, dimension: d, reference: pixelReference, resamples: bootstrap, seed: seed ^ 0x70_6978))
    }

    /// The finite-sample floor at sample count n: the same statistics for n real digits of the train split (drawn
    /// without replacement when n ≤ train.count, with replacement above) against the held-out reference.
    public func floor(train: DigitsDataset, count n: Int, bootstrap: Int = 200, seed: UInt64 = 0) throws -> DigitsFIDReport {
        var rng = Xoshiro256(seed: seed ^ 0x666C_6F6F_72)  // "floor"
        var order = Array(0..<train.count)
        var picks: [Int]
        if n <= train.count {
            for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            picks = Array(order.prefix(n))
        } else {
            picks = (0..<n).map { _ in Int(rng.next() % UInt64(train.count)) }
        }
        return try evaluate(train.subset(picks).pixels, bootstrap: bootstrap, seed: seed)
    }

    /// FD of `x` (`[n, dimension]`) against `reference` with its bootstrap interval (FrechetBootstrap; the
    /// resample indices come from Xoshiro256 seeded with `seed ^ "boot"`).
    public static func estimate(_ x: [Float], dimension d: Int, reference: GaussianMoments, resamples: Int,
                                seed: UInt64) throws -> FDEstimate {
        var rng = Xoshiro256(seed: seed ^ 0x626F_6F74)  // "boot"
        return try FrechetBootstrap.estimate(x, dimension: d, reference: reference, resamples: resamples, using: &rng)
    }

    // MARK: Cache

    private func writeMoments(_ file: URL) throws {
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        var w = SafetensorsWriter()
        w.metadata = ["key": referenceKey, "reference_count": String(referenceCount),
                      "contents": "mean (n) and n-1 covariance (n x n) of the reference features and pixels, float64"]
        func add(_ name: String, _ v: [Double], _ shape: [Int]) {
            w.add(name, dtype: .f64, shape: shape, bytes: v.withUnsafeBytes { Data($0) })
        }
        add("feature_mean", featureReference.mean, [featureReference.dimension])
        add("feature_covariance", featureReference.covariance, [featureReference.dimension, featureReference.dimension])
        add("pixel_mean", pixelReference.mean, [pixelReference.dimension])
        add("pixel_covariance", pixelReference.covariance, [pixelReference.dimension, pixelReference.dimension])
        // Written under a temporary name, then renamed, so a reader never sees a partial file.
        let tmp = file.path + ".tmp-\(getpid())"
        try w.write(to: tmp)
        _ = try? FileManager.default.removeItem(atPath: file.path)
        do { try FileManager.default.moveItem(atPath: tmp, toPath: file.path) } catch {
            throw DiTError.io(path: file.path, reason: "cannot move the reference statistics into place: \(error.localizedDescription)")
        }
    }

    private static func readMoments(_ path: String, featureWidth: Int, pixels: Int) throws -> (GaussianMoments, GaussianMoments) {
        let f = try SafetensorsFile(path: path)
        func doubles(_ name: String, _ shape: [Int]) throws -> [Double] {
            guard let e = f[name] else { throw DiTError.missingTensor(path: path, key: name, expectedShape: shape) }
            guard e.shape == shape else { throw DiTError.shapeMismatch(path: path, key: name, expected: shape, got: e.shape) }
            guard e.dtype == .f64 else { throw DiTError.unsupportedDType(path: path, key: name, dtype: e.dtype.rawValue, expected: "F64") }
            return (0..<e.elementCount).map { e.data.loadUnaligned(fromByteOffset: 8 * $0, as: Double.self) }
        }
        return (GaussianMoments(mean: try doubles("feature_mean", [featureWidth]),
                                covariance: try doubles("feature_covariance", [featureWidth, featureWidth])),
                GaussianMoments(mean: try doubles("pixel_mean", [pixels]),
                                covariance: try doubles("pixel_covariance", [pixels, pixels])))
    }
}

/// FNV-1a, 64 bits: a content hash for cache keys (not a cryptographic digest).
struct FNV1a64 {
    private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325
    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        for b in bytes { value = (value ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    }
    mutating func add(_ bytes: [UInt8]) { bytes.withUnsafeBytes { add($0) } }
    mutating func add(_ words: [UInt64]) { words.withUnsafeBytes { add($0) } }
}
