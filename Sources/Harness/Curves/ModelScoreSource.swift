import DiT
import Diffusion
import Foundation
import Metrics
import Tensor
import Training

/// A trained DiT or DiT-MoE on the digits as a curves source: the ε-model through the VP adapter, in the DMCMC
/// image convention of the samplers — data in [0, 1] pixel units (the model's [−1, 1] is y = 2x − 1, σ_y = 2σ_x),
/// so the CIFAR10 constants apply unchanged: σ_max 50 (σ_y = 100, inside the DDPM table's 157), Tweedie τ 0.01 and a
/// clamp to [0, 1].
///
/// Samples are class-conditional with labels cycling 0, 1, …, 9 over the batch (every cell holds each class
/// equally), optionally with classifier-free guidance. FD is measured in pixel space (64-d) against the held-out
/// digits, and as FID-digits (the Fréchet distance of a digit classifier's penultimate features — not Inception
/// FID) with bootstrap intervals over samples; the floor is the train split's real digits at the same sample count.
/// DLG's σ-step uses the shipped noise-level classifier (1000 levels), not an exact likelihood. The digits are not
/// ImageNet: these numbers are about samplers on a small real data set, not about image quality at scale.
public final class ModelScoreSource: CurveScoreSource {
    public let model: DiTModel
    public let epsilonModel: DiTEpsilonModel
    public let denoiser: Denoiser
    public let sigmaMax: Double = 50
    public let finish = FinishSettings(tau: 0.01, clamp: 0...1)
    public let levelEstimator: NoiseLevelEstimator?
    public let label: String
    /// Held-out and training images, [n, 64] in [0, 1] units.
    public let heldOut: [Float]
    public let train: [Float]
    /// FID-digits against the held-out digits (nil: pixel FD only).
    public let fid: DigitsFID?
    /// Bootstrap resamples of the FD intervals.
    public var bootstrap = 200

    /// - batch: the sweep's chain count (labels are assigned per batch row).
    public init(model: DiTModel, name: String, cfgScale: Float?, batch: Int, heldOut: [Float], train: [Float],
                levelEstimator: NoiseLevelEstimator?, fid: DigitsFID? = nil) {
        self.model = model
        let classes = model.config.numClasses
        epsilonModel = DiTEpsilonModel(model: model, labels: (0..<batch).map { Int32($0 % classes) }, cfgScale: cfgScale)
        denoiser = VPEpsilonDenoiser(epsilonModel, units: .zeroOneToMinusOneOne)
        self.levelEstimator = levelEstimator
        self.heldOut = heldOut; self.train = train; self.fid = fid
        label = "model=\(name),cfg=\(cfgScale.map { "\($0)" } ?? "none"),sigma_max=50,tau=0.01"
    }

    public var dimension: Int { epsilonModel.dimension }

    /// The shipped noise-level classifier and FID-digits network, for a sampler in [0, 1] pixel units.
    public static func bundledInstruments() throws -> (NoiseLevelEstimator, DigitsFID) {
        (try NoiseLevelClassifier.bundled(units: .zeroOneToMinusOneOne), try DigitsFID.bundled())
    }

    public func measure(_ samples: [Float], into row: inout CurveRow) throws {
        guard let fid else { return }
        let report = try fid.evaluate(samples.map { 2 * $0 - 1 }, bootstrap: bootstrap, seed: UInt64(row.seed))
        row.fidDigits = report.fidDigits.value
        row.fidDigitsLower = report.fidDigits.lower; row.fidDigitsUpper = report.fidDigits.upper
        row.fdLower = report.pixelFD.lower / 4; row.fdUpper = report.pixelFD.upper / 4  // [−1,1]² → [0,1]² units
    }

    public func referenceMoments() throws -> GaussianMoments {
        GaussianMoments(samples: heldOut, dimension: dimension)
    }

    /// `count` distinct training digits (seeded), or nil when the split has fewer.
    public func exactSamples(count: Int, seed: UInt64) -> [Float]? {
        let d = dimension, n = train.count / d
        guard count <= n else { return nil }
        var order = Array(0..<n), rng = SplitMix64(seed: seed ^ 0xF100_F100)
        for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        return order.prefix(count).flatMap { train[($0 * d)..<(($0 + 1) * d)] }
    }
}
