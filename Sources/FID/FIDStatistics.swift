import Formats
import Foundation
import Metrics

/// The statistics an FID is computed from: the features' mean and covariance, and the features themselves when KID
/// is wanted (KID needs samples, not moments).
///
/// File format: a `.npz` with `mu` [d] and `sigma` [d, d] (float64 or float32), as pytorch-fid's `--save-stats` and
/// ADM's reference batches hold them; moebench adds `count` (int64 [1], the number of images) and, when written
/// with features, `features` [n, d] float32. ADM's `VIRTUAL_imagenet256_labeled.npz` also holds `mu_s`/`sigma_s`
/// (sFID, spatial features; not used) and `arr_0` (reference images; used for KID when there are no `features`).
public struct FIDStatistics {
    public var moments: GaussianMoments
    public var features: [Float]?

    public init(moments: GaussianMoments, features: [Float]?) { self.moments = moments; self.features = features }

    public var dimension: Int { moments.dimension }

    /// True when `archive` holds statistics (`mu` and `sigma`) rather than only images.
    public static func holdsStatistics(_ archive: NumpyArchive) -> Bool { archive.contains("mu") && archive.contains("sigma") }

    /// Reads `mu`, `sigma` (and `count`, `features` when present), checking every shape and value.
    public init(archive a: NumpyArchive) throws {
        let mu = try a.array("mu"), sigma = try a.array("sigma")
        guard mu.shape.count == 1, mu.shape[0] > 0 else { throw FIDError(file: a.path, "'mu' has shape \(mu.shape); expected [d]") }
        let d = mu.shape[0]
        guard sigma.shape == [d, d] else { throw FIDError(file: a.path, "'sigma' has shape \(sigma.shape); expected [\(d), \(d)] to match 'mu' [\(d)]") }
        guard mu.dtype == .float64 || mu.dtype == .float32, sigma.dtype == .float64 || sigma.dtype == .float32 else {
            throw FIDError(file: a.path, "'mu'/'sigma' are \(mu.dtype.rawValue)/\(sigma.dtype.rawValue); expected float64 or float32")
        }
        let m = mu.doubles(), s = sigma.doubles()
        if let bad = m.firstIndex(where: { !$0.isFinite }) { throw FIDError(file: a.path, "'mu'[\(bad)] is \(m[bad])") }
        if let bad = s.firstIndex(where: { !$0.isFinite }) { throw FIDError(file: a.path, "'sigma'[\(bad / d), \(bad % d)] is \(s[bad])") }
        var count: Int?
        if a.contains("count") { count = try a.array("count").doubles().first.map { Int($0) } }
        var feats: [Float]?
        if a.contains("features") {
            let f = try a.array("features")
            guard f.shape.count == 2, f.shape[1] == d else { throw FIDError(file: a.path, "'features' has shape \(f.shape); expected [n, \(d)]") }
            feats = f.floats()
            count = count ?? f.shape[0]
        }
        moments = GaussianMoments(mean: m, covariance: s, sampleCount: count)
        features = feats
    }

    public init(path: String) throws {
        let a: NumpyArchive
        do { a = try NumpyArchive(path: path) } catch { throw FIDError(file: path, "cannot read statistics: \(error)") }
        try self.init(archive: a)
    }

    /// The arrays of a statistics file; `extra` are appended (e.g. the cache's key).
    public func arrays(includeFeatures: Bool = true) -> [(String, NumpyArray)] {
        let d = dimension
        var out: [(String, NumpyArray)] = [("mu", NumpyArray(float64: moments.mean, shape: [d])),
                                           ("sigma", NumpyArray(float64: moments.covariance, shape: [d, d]))]
        if let n = moments.sampleCount {
            out.append(("count", NumpyArray(dtype: .int64, shape: [1], bytes: withUnsafeBytes(of: Int64(n).littleEndian) { Array($0) })))
        }
        if includeFeatures, let f = features { out.append(("features", NumpyArray(float32: f, shape: [f.count / d, d]))) }
        return out
    }

    public func write(to path: String, includeFeatures: Bool = true) throws {
        try NumpyArchive.write(arrays(includeFeatures: includeFeatures), to: path)
    }
}

/// FID (and KID) of one statistics set against another.
public struct FIDScore: Codable, Equatable, Sendable {
    public var fid: Double
    public var kid: Double?
    public var kidStd: Double?
    public var kidSubsets: Int?
    public var kidSubsetSize: Int?
    public var samples: Int?
    public var referenceSamples: Int?

    enum CodingKeys: String, CodingKey {
        case fid, kid, kidStd = "kid_std", kidSubsets = "kid_subsets", kidSubsetSize = "kid_subset_size", samples
        case referenceSamples = "reference_samples"
    }

    /// FID = Fréchet distance of the two Gaussians; with `kid`, KID over random subsets (seeded).
    public static func compute(_ sample: FIDStatistics, against reference: FIDStatistics, kid: Bool = false,
                               kidSubsets: Int = KernelInceptionDistance.defaultSubsets,
                               kidSubsetSize: Int = KernelInceptionDistance.defaultSubsetSize, seed: UInt64 = 0) throws -> FIDScore {
        guard sample.dimension == reference.dimension else {
            throw FIDError(file: "reference", "feature dimensions differ: samples \(sample.dimension), reference \(reference.dimension)")
        }
        var s = FIDScore(fid: try FrechetDistance.between(sample.moments, reference.moments), samples: sample.moments.sampleCount,
                         referenceSamples: reference.moments.sampleCount)
        if kid {
            guard let x = sample.features, let y = reference.features else {
                throw FIDError(file: "reference", "KID needs the features of both sets")
            }
            let e = KernelInceptionDistance.estimate(x, y, dimension: sample.dimension, subsets: kidSubsets,
                                                     subsetSize: kidSubsetSize, seed: seed)
            s.kid = e.mean; s.kidStd = e.std; s.kidSubsets = e.subsets; s.kidSubsetSize = e.subsetSize
        }
        return s
    }
}
