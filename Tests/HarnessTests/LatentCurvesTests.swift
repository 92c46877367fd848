import DiT
import Diffusion
import FID
import Foundation
import Metrics
import Tensor
import Vision
import XCTest
@testable import Harness

/// The latent-model wiring of `moebench curves` end to end on tiny random networks: a latent DiT-MoE (8×8×4),
/// the small SD-VAE decoder config of the VAE tests (16/32 channels, 8×8 latents → 16×16 images) and the FID
/// Inception on deterministic weights. The row's FID must equal an independent computation (each latent decoded
/// alone, quantised by `.roundHalfUp`, featurised alone, two-pass moments, Fréchet distance), and a rerun resumes.
final class LatentCurvesTests: XCTestCase {
    static let config = DiTConfig(name: "tiny-latent", inputSize: 8, patchSize: 2, inChannels: 4, hiddenSize: 32, depth: 2,
                                  numHeads: 2, numClasses: 10, numExperts: 4, numExpertsPerTok: 2, numSharedExperts: 1)
    static let vaeConfig = VAEConfig(blockOutChannels: [16, 32], layersPerBlock: 1, normGroups: 8)

    /// A synthetic reference: diagonal covariance, 4 non-negative reference feature vectors for KID.
    static func reference() -> FIDStatistics {
        var rng = SplitMix64(seed: 11)
        let d = FIDInception.featureCount
        let feats = (0..<(4 * d)).map { _ in rng.nextUnitFloat() * 0.5 }
        let mean = (0..<d).map { _ in Double(rng.nextUnitFloat()) * 0.3 }
        var cov = [Double](repeating: 0, count: d * d)
        for i in 0..<d { cov[i * d + i] = 0.01 + 0.02 * Double(rng.nextUnitFloat()) }
        return FIDStatistics(moments: GaussianMoments(mean: mean, covariance: cov, sampleCount: 50_000), features: feats)
    }

    func makeSource(kid: Bool) throws -> LatentScoreSource {
        let model = try DiTModel(config: Self.config, source: .random(seed: 5))
        let vae = VAEDecoder(weights: VAEDecoderWeights(config: Self.vaeConfig, seed: 3), latentHeight: 8, latentWidth: 8, maxBatch: 2)
        let extractor = FIDFeatureExtractor(weights: FIDInceptionWeights(seed: 7), identity: "seed:7", maxBatch: 2)
        return try LatentScoreSource(model: model, name: "tiny-latent", cfgScale: nil, batch: 2, decoder: vae, decoderIdentity: "seed:3",
                                     extractor: extractor,
                                     reference: Self.reference(), referenceName: "synthetic.npz", kid: kid)
    }

    func testLatentCellFIDEqualsIndependentComputationAndResumes() throws {
        let saved = Parallel.threads
        Parallel.threads = 2
        defer { Parallel.threads = saved }
        let dir = NSTemporaryDirectory() + "/moebench-latent-curves-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var config = CurveSweepConfig()
        config.integrators = [.pf]; config.budgets = [4]; config.dlgModes = [false]
        config.samples = 4; config.chains = 2; config.seeds = [0]
        let source = try makeSource(kid: true)
        XCTAssertEqual(source.sigmaMax, DDPMTable().sigmas.last!)
        XCTAssertEqual(source.sigmaMax, 157.4, accuracy: 0.1)
        let sweep = try CurveSweep(source: source, config: config, store: try CurveStore(directory: dir))
        var latents: [Float] = []
        sweep.onCellSamples = { _, s in latents = s }
        let rows = try sweep.run()
        XCTAssertEqual(rows.count, 1, "one cell, no floor row: \(rows.map(\.integrator))")
        let row = rows[0]
        XCTAssertEqual(source.measuredCells, 1)
        XCTAssertEqual(latents.count, 4 * 256)
        XCTAssertTrue(latents.allSatisfy(\.isFinite))
        let fid = try XCTUnwrap(row.fid)
        XCTAssertEqual(row.fd, fid)
        XCTAssertNil(row.fdLower)

        // Independent: one latent at a time through a fresh decoder and network.
        let vae = VAEDecoder(weights: VAEDecoderWeights(config: Self.vaeConfig, seed: 3), latentHeight: 8, latentWidth: 8, maxBatch: 1)
        let net = FIDInception(weights: FIDInceptionWeights(seed: 7), imageHeight: 16, imageWidth: 16, maxBatch: 1)
        var feats = [Float](), levels = Set<UInt8>()
        var sample = [Float](repeating: 0, count: vae.imageCount), pixels = [UInt8](repeating: 0, count: vae.imageCount)
        for i in 0..<4 {
            let z = Array(latents[(i * 256)..<((i + 1) * 256)])
            vae.decode(latents: z, batch: 1, scalingFactor: 0.18215, into: &sample)
            for (k, x) in sample.enumerated() { pixels[k] = UInt8(min(max(127.5 * x + 128, 0), 255)) }  // floor(clamp(127.5x + 128))
            levels.formUnion(pixels)
            var f = [Float](repeating: 0, count: 2048)
            net.features(pixels: pixels, batch: 1, into: &f)
            feats += f
        }
        XCTAssertGreaterThan(levels.count, 10, "decoded images are (nearly) constant; the check would be weak")
        let expected = try FrechetDistance.between(GaussianMoments(samples: feats, dimension: 2048), Self.reference().moments)
        let err = abs(fid - expected) / expected
        print("latent cell FID \(fid) vs independent \(expected): relative \(err) (tolerance 1e-9)")
        XCTAssertLessThanOrEqual(err, 1e-9)
        let kid = KernelInceptionDistance.estimate(feats, Self.reference().features!, dimension: 2048, seed: UInt64(row.seed))
        XCTAssertEqual(try XCTUnwrap(row.kid), kid.mean, accuracy: 1e-9 * max(1, abs(kid.mean)))
        XCTAssertEqual(try XCTUnwrap(row.kidStd), kid.std, accuracy: 1e-9 * max(1, kid.std))

        // Rerun on the same directory: the cell is read back, nothing is sampled or measured again.
        let again = try makeSource(kid: true)
        var messages: [String] = []
        let resumed = try CurveSweep(source: again, config: config, store: try CurveStore(directory: dir)) { messages.append($0) }
        var sampledAgain = false
        resumed.onCellSamples = { _, _ in sampledAgain = true }
        let rows2 = try resumed.run()
        XCTAssertEqual(rows2, rows)
        XCTAssertFalse(sampledAgain)
        XCTAssertEqual(again.measuredCells, 0)
        XCTAssertTrue(messages.contains { $0.contains("resumed: 1 cell") }, "\(messages)")
        XCTAssertEqual(again.model.config.name, "tiny-latent")
    }

    func testDLGIsRefusedForLatentModels() throws {
        var config = CurveSweepConfig()
        config.integrators = [.pf]; config.budgets = [10]; config.dlgModes = [false, true]; config.samples = 2; config.chains = 2; config.seeds = [0]
        XCTAssertThrowsError(try CurveSweep(source: makeSource(kid: false), config: config, store: CurveStore(directory: NSTemporaryDirectory() + "/moebench-latent-dlg-\(getpid())"))) {
            XCTAssertTrue("\($0)".contains("no noise-level estimator"), "\($0)")
        }
        var s = CurvesSettings.standard
        s.score = "model"; s.models = ["m"]; s.decoder = "vae.safetensors"; s.fidRef = "ref.npz"; s.inception = "inc.safetensors"
        XCTAssertThrowsError(try s.validate()) {
            let p = $0 as? CurvesSettings.Problem
            XCTAssertEqual(p?.key, "dlg"); XCTAssertEqual(p?.flag, "--dlg")
            XCTAssertTrue(p?.message.contains("ImageNet latents") ?? false, "\($0)")
        }
        s.dlg = .off
        XCTAssertNoThrow(try s.validate())
        s.inception = nil
        XCTAssertThrowsError(try s.validate()) { XCTAssertEqual(($0 as? CurvesSettings.Problem)?.key, "inception") }
    }
}
