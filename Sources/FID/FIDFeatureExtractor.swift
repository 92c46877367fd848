import Crypto
import DiT
import Foundation
import Tensor
import Vision

/// pytorch-fid's Inception pool3 features of uint8 images of any size, with an identity for the statistics cache.
///
/// One `FIDInception` is kept for the most recent image size (its buffers are sized for it and `maxBatch` images,
/// about 22 MB per image of batch); a new size builds a new one.
public final class FIDFeatureExtractor {
    public let weights: FIDInceptionWeights
    /// What the weights are: "sha256:<hex>" of the safetensors file, or a description of generated weights.
    public let identity: String
    public let maxBatch: Int
    private var network: FIDInception?

    /// Everything besides the images and the weights that changes the features; part of every cache key.
    public static let preprocessing = "moebench-fid-1;pytorch-fid InceptionV3 pool3 2048;uint8/255;bilinear to 299 align_corners=False no antialias;RGB (gray replicated, alpha dropped)"

    public init(weights: FIDInceptionWeights, identity: String, maxBatch: Int = 8) {
        self.weights = weights; self.identity = identity; self.maxBatch = max(1, maxBatch)
    }

    /// Loads `tools/convert_fid_inception.py`'s safetensors file; a missing or wrong file is an error naming it.
    public convenience init(path: String, maxBatch: Int = 8) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw FIDError(file: path, "no such file: the FID Inception weights come from `python3 tools/convert_fid_inception.py pt_inception-2015-12-05-6726825d.pth \((path as NSString).lastPathComponent)` (docs/fid.md)")
        }
        let weights: FIDInceptionWeights
        do { weights = try FIDInceptionWeights(file: SafetensorsFile(path: path)) } catch let e as DiTError {
            throw FIDError(file: path, "not pytorch-fid's Inception weights as tools/convert_fid_inception.py writes them: \(e)")
        }
        let identity = try Self.fileDigest(path: path)
        self.init(weights: weights, identity: "sha256:" + identity, maxBatch: maxBatch)
    }

    /// SHA-256 (hex) of a file's bytes, read in 16 MiB chunks.
    public static func fileDigest(path: String) throws -> String {
        guard let h = FileHandle(forReadingAtPath: path) else { throw FIDError(file: path, "cannot read the file") }
        defer { try? h.close() }
        var sha = SHA256()
        while let chunk = try h.read(upToCount: 1 << 24), !chunk.isEmpty { sha.update(data: chunk) }
        return sha.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Pool3 features of `n` uint8 images [n, 3, height, width] → [n, 2048].
    public func features(pixels: UnsafePointer<UInt8>, count n: Int, height: Int, width: Int, into out: UnsafeMutablePointer<Float>) {
        if network == nil || network!.imageHeight != height || network!.imageWidth != width {
            network = nil
            network = FIDInception(weights: weights, imageHeight: height, imageWidth: width, maxBatch: maxBatch)
        }
        network!.features(pixels: pixels, batch: n, into: out)
    }
}
