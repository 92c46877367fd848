import DiT
import Diffusion
import FID
import Foundation
import Metrics
import Tensor
import Vision

/// A latent DiT / DiT-MoE (ImageNet-style: C = 4 latent channels of an SD-VAE) as a curves source whose rows carry
/// Inception FID.
///
/// Units: the sampler works in the DiT's own units — the VAE latents times the scaling factor (0.18215 for
/// sd-vae), about unit standard deviation — through the VP ε adapter with no affine map. σ is the VE noise level of
/// those units: the DDPM linear table (β 1e-4 … 0.02, T = 1000) spans σ = √(1/ᾱ − 1) from 0.0100 to 157.4, so
/// vanilla runs start at σ_max = 157.4 (DDPM's x_T) and integrate down to σ_min = 0.01, and the final Tweedie step
/// uses τ = 0.01 with no clamp (latents are unbounded).
///
/// FID: each cell's latents go through the VAE decoder (latent ÷ scaling factor inside it) in batches, are quantised
/// to uint8 by `.roundHalfUp` (DiT's `sample_ddp.py`: clamp(127.5·x + 128, 0, 255)), run through pytorch-fid's
/// Inception, and their features are streamed into Float64 moments; the row's `fd` and `fid` are the Fréchet
/// distance of those features to the reference statistics (there is no latent-space reference), `kid` is added on
/// request. No floor row (no real latents), no bootstrap interval.
///
/// DLG is refused (`levelEstimator` is nil): its σ-step is the MAP level of a classifier trained on noisy data, and
/// no such classifier exists for ImageNet latents. A training-free stand-in (e.g. a denoiser-residual fixed point
/// σ ← ‖x − D(x; σ)‖/√d) would spend model calls inside every Langevin step, changing the NFE budgets the curves
/// compare, and is not validated against DMCMC's classifier; so latent models run vanilla cells only.
///
/// Labels: per block of `batch` samples, classes (block·batch + row) mod K, so a cell whose sample count is a
/// multiple of K holds every class equally (DiT samples uniformly random classes; the expectation is the same).
public final class LatentScoreSource: CurveScoreSource {
    public let model: DiTModel
    public let epsilonModel: DiTEpsilonModel
    public let denoiser: Denoiser
    public let sigmaMax: Double
    public let finish = FinishSettings(tau: 0.01, clamp: nil)
    public var levelEstimator: NoiseLevelEstimator? { nil }
    public let label: String
    public let decoder: VAEDecoder
    public let extractor: FIDFeatureExtractor
    public let reference: FIDStatistics
    public let kid: Bool
    public var measuresFD: Bool { true }
    /// Cells measured by this instance (a resumed cell is not measured again).
    public private(set) var measuredCells = 0
    public var log: (String) -> Void = { _ in }
    private let batch: Int

    /// - batch: the sweep's chain count; `referenceName` and `decoderIdentity` (e.g. the weights file's SHA-256)
    ///   identify the reference and the VAE in the label, which is part of every row's resume key.
    public init(model: DiTModel, name: String, cfgScale: Float?, batch: Int, decoder: VAEDecoder, decoderIdentity: String,
                extractor: FIDFeatureExtractor, reference: FIDStatistics, referenceName: String, kid: Bool) throws {
        let c = model.config
        guard decoder.latentHeight == c.inputSize, decoder.latentWidth == c.inputSize, decoder.config.latentChannels == c.inChannels else {
            throw FIDError(file: "--decoder", "the VAE decodes \(decoder.config.latentChannels)×\(decoder.latentHeight)×\(decoder.latentWidth) latents; the model \(name) samples \(c.inChannels)×\(c.inputSize)×\(c.inputSize)")
        }
        guard reference.dimension == FIDInception.featureCount else {
            throw FIDError(file: referenceName, "statistics of dimension \(reference.dimension); Inception pool3 FID needs \(FIDInception.featureCount)")
        }
        if kid && reference.features == nil { throw FIDError(file: referenceName, "KID needs the reference's features") }
        self.model = model
        self.batch = batch
        epsilonModel = DiTEpsilonModel(model: model, labels: (0..<batch).map { Int32($0 % c.numClasses) }, cfgScale: cfgScale)
        let table = DDPMTable()
        denoiser = VPEpsilonDenoiser(epsilonModel, table: table, units: .native)
        sigmaMax = table.sigmas.last!
        self.decoder = decoder; self.extractor = extractor; self.reference = reference; self.kid = kid
        label = "model=\(name),latent,cfg=\(cfgScale.map { "\($0)" } ?? "none"),sigma_max=\(String(format: "%.1f", sigmaMax)),tau=0.01,"
            + "fid_ref=\(referenceName),inception=\(extractor.identity.prefix(19)),vae=\(decoderIdentity.prefix(19))"
    }

    public var dimension: Int { epsilonModel.dimension }

    public func beginBlock(_ block: Int) {
        let k = model.config.numClasses
        epsilonModel.labels = (0..<batch).map { Int32((block * batch + $0) % k) }
    }

    public func referenceMoments() throws -> GaussianMoments { reference.moments }

    public func exactSamples(count: Int, seed: UInt64) -> [Float]? { nil }

    /// The Inception features' statistics of `latents` ([n, C·h·w], the DiT's units), decoded in chunks of the
    /// decoder's `maxBatch`.
    public func imageStatistics(_ latents: [Float], keepFeatures: Bool) throws -> FIDStatistics {
        let d = dimension, n = latents.count / d, chunk = decoder.maxBatch
        let moments = StreamingMoments(dimension: FIDInception.featureCount)
        var feats: [Float]? = keepFeatures ? [] : nil
        var pixels = [UInt8](repeating: 0, count: chunk * decoder.imageCount)
        var out = [Float](repeating: 0, count: chunk * FIDInception.featureCount)
        var done = 0
        let start = Date()
        var lastLog = start
        while done < n {
            let m = min(chunk, n - done)
            latents.withUnsafeBufferPointer { z in
                pixels.withUnsafeMutableBufferPointer {
                    decoder.decodePixels(latents: z.baseAddress! + done * d, batch: m, scalingFactor: decoder.config.scalingFactor,
                                         quantisation: .roundHalfUp, into: $0.baseAddress!)
                }
            }
            pixels.withUnsafeBufferPointer { p in
                out.withUnsafeMutableBufferPointer {
                    extractor.features(pixels: p.baseAddress!, count: m, height: decoder.outHeight, width: decoder.outWidth, into: $0.baseAddress!)
                }
            }
            out.withUnsafeBufferPointer { moments.add($0.baseAddress!, count: m) }
            feats?.append(contentsOf: out[0..<(m * FIDInception.featureCount)])
            done += m
            if Date().timeIntervalSince(lastLog) > 10 {
                lastLog = Date()
                log(String(format: "  FID: decoded and featurised %d/%d samples (%.1f s)", done, n, lastLog.timeIntervalSince(start)))
            }
        }
        return FIDStatistics(moments: moments.moments(), features: feats)
    }

    public func measure(_ samples: [Float], into row: inout CurveRow) throws {
        let stats = try imageStatistics(samples, keepFeatures: kid)
        let score = try FIDScore.compute(stats, against: reference, kid: kid, seed: UInt64(row.seed))
        row.fd = score.fid
        row.fid = score.fid
        row.kid = score.kid; row.kidStd = score.kidStd
        measuredCells += 1
    }
}
