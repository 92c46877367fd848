import DiT
import Diffusion
import Foundation
import Metrics
import Tensor

/// A trained DiT or DiT-MoE on the digits as a curves source: the ε-model through the VP adapter, in the DMCMC
/// image convention of the samplers — data in [0, 1] pixel units (the model's [−1, 1] is y = 2x − 1, σ_y = 2σ_x),
/// so the CIFAR10 constants apply unchanged: σ_max 50 (σ_y = 100, inside the DDPM table's 157), Tweedie τ 0.01 and a
/// clamp to [0, 1].
///
/// Samples are class-conditional with labels cycling 0, 1, …, 9 over the batch (every cell holds each class
/// equally), optionally with classifier-free guidance. FD is measured in pixel space (64-d) against the held-out
/// digits; the floor is the train split's real digits at the same sample count. The digits are not ImageNet: these
/// numbers are about samplers on a small real data set, not about image quality at scale.
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

    /// - batch: the sweep's chain count (labels are assigned per batch row).
    public init(model: DiTModel, name: String, cfgScale: Float?, batch: Int, heldOut: [Float], train: [Float],
                levelEstimator: NoiseLevelEstimator?) {
        self.model = model
        let classes = model.config.numClasses
        epsilonModel = DiTEpsilonModel(model: model, labels: (0..<batch).map { Int32($0 % classes) }, cfgScale: cfgScale)
        denoiser = VPEpsilonDenoiser(epsilonModel, units: .zeroOneToMinusOneOne)
        self.levelEstimator = levelEstimator
        self.heldOut = heldOut; self.train = train
        label = "model=\(name),cfg=\(cfgScale.map { "\($0)" } ?? "none"),sigma_max=50,tau=0.01"
    }

    public var dimension: Int { epsilonModel.dimension }

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
