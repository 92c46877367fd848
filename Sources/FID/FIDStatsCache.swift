import Crypto
import Formats
import Foundation
import Metrics
import Vision

/// Statistics of image sets, kept on disk by content: the key is the SHA-256 of the images' content digest, the
/// feature network's identity and the preprocessing string, so renaming a folder keeps its entry and changing one
/// pixel, the weights or the preprocessing does not reuse it.
///
/// An entry is `<key>.npz` (a statistics file plus `key`, the key's bytes). It is written to a temporary file and
/// renamed, so a reader never sees half an entry. On read, the zip CRC-32 of every array and the recorded key are
/// checked; an entry that fails (truncated, corrupt, foreign) is reported and recomputed, never used.
public struct FIDStatsCache {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// `$MOEBENCH_FID_CACHE`, else `$XDG_CACHE_HOME/moebench/fid`, else `~/.cache/moebench/fid`.
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let d = environment["MOEBENCH_FID_CACHE"], !d.isEmpty { return d }
        if let x = environment["XDG_CACHE_HOME"], !x.isEmpty { return x + "/moebench/fid" }
        return (environment["HOME"] ?? NSHomeDirectory()) + "/.cache/moebench/fid"
    }

    public static func key(content: String, network: String, preprocessing: String = FIDFeatureExtractor.preprocessing) -> String {
        let text = "content=\(content)\nnetwork=\(network)\npreprocessing=\(preprocessing)\n"
        return SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    public func path(_ key: String) -> String { directory + "/" + key + ".npz" }

    public enum Lookup {
        case hit(FIDStatistics)
        case miss
        /// The entry exists but cannot be used (why), or lacks the features that were asked for.
        case unusable(String)
    }

    public func load(_ key: String, needFeatures: Bool) -> Lookup {
        let p = path(key)
        guard FileManager.default.fileExists(atPath: p) else { return .miss }
        do {
            let a = try NumpyArchive(path: p)
            let recorded = try a.array("key")
            guard recorded.bytes == Array(key.utf8) else { return .unusable("\(p): records another key") }
            let stats = try FIDStatistics(archive: a)
            if needFeatures && stats.features == nil { return .unusable("\(p): has no features (KID needs them)") }
            return .hit(stats)
        } catch {
            return .unusable("\(error)")
        }
    }

    public func store(_ key: String, _ stats: FIDStatistics) throws {
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw FIDError(file: directory, "cannot create the cache directory: \(error.localizedDescription)")
        }
        let keyBytes = Array(key.utf8)
        try NumpyArchive.write(stats.arrays() + [("key", NumpyArray(uint8: keyBytes, shape: [keyBytes.count]))], to: path(key))
    }
}

/// Computes (or finds in the cache) the statistics of an image set.
public final class FIDStatisticsBuilder {
    public let extractor: FIDFeatureExtractor
    public let cache: FIDStatsCache?
    /// Called after each batch with (images done, total) and once per cache decision with a message.
    public var progress: (Int, Int) -> Void = { _, _ in }
    public var log: (String) -> Void = { _ in }

    public init(extractor: FIDFeatureExtractor, cache: FIDStatsCache?) {
        self.extractor = extractor; self.cache = cache
    }

    public func statistics(of images: ImageSet, keepFeatures: Bool) throws -> FIDStatistics {
        guard images.count >= 2 else { throw FIDError(file: images.path, "\(images.count) image(s); FID needs at least 2") }
        var key: String?
        if let cache {
            let k = FIDStatsCache.key(content: try images.contentDigest(), network: extractor.identity)
            key = k
            switch cache.load(k, needFeatures: keepFeatures) {
            case .hit(let s):
                log("fid: statistics of \(images.path) from the cache (\(cache.path(k)))")
                return s
            case .unusable(let why): log("fid: cache entry not used, recomputing: \(why)")
            case .miss: break
            }
        }
        let stats = try compute(images, keepFeatures: keepFeatures || cache != nil)
        if let cache, let key {
            do { try cache.store(key, stats) } catch { log("fid: could not write the cache entry: \(error)") }
        }
        return keepFeatures ? stats : FIDStatistics(moments: stats.moments, features: nil)
    }

    func compute(_ images: ImageSet, keepFeatures: Bool) throws -> FIDStatistics {
        let d = FIDInception.featureCount
        let moments = StreamingMoments(dimension: d)
        var features = keepFeatures ? [Float]() : nil
        features?.reserveCapacity(images.count * d)
        var out = [Float](repeating: 0, count: extractor.maxBatch * d), done = 0
        try images.forEachBatch(extractor.maxBatch) { pixels, n, h, w in
            out.withUnsafeMutableBufferPointer { extractor.features(pixels: pixels, count: n, height: h, width: w, into: $0.baseAddress!) }
            out.withUnsafeBufferPointer { moments.add($0.baseAddress!, count: n) }
            features?.append(contentsOf: out[0..<(n * d)])
            done += n
            progress(done, images.count)
        }
        return FIDStatistics(moments: moments.moments(), features: features)
    }
}
