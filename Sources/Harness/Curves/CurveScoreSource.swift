import Diffusion
import Metrics

// What `moebench curves` samples from: a denoiser, the σ-step's level estimator, the reference moments FD is
// measured against, and (when the source has them) exact draws for the floor row.

public protocol CurveScoreSource: AnyObject {
    /// Identifies the source and its parameters in every row (and in the resume key).
    var label: String { get }
    var dimension: Int { get }
    /// σ_max of vanilla runs and of the DLG level set, in the source's data units.
    var sigmaMax: Double { get }
    /// The final Tweedie τ and clamp.
    var finish: FinishSettings { get }
    /// The model (used by one sampler at a time).
    var denoiser: Denoiser { get }
    /// The σ-step's estimator; nil when the source has none (then DLG cells are refused).
    var levelEstimator: NoiseLevelEstimator? { get }
    /// Moments FD is measured against (exact for the testbed; dataset statistics for images).
    func referenceMoments() throws -> GaussianMoments
    /// `count` exact draws from the data distribution ([count, dimension]), or nil.
    func exactSamples(count: Int, seed: UInt64) -> [Float]?
    /// Fills a row's extra measurements of `samples` (e.g. FID-digits and bootstrap intervals); default: none.
    func measure(_ samples: [Float], into row: inout CurveRow) throws
    /// True when `measure` sets the row's `fd` itself (e.g. Inception FID of decoded latents): the sweep then computes
    /// no data-space FD, no bootstrap interval and no floor row. Default false.
    var measuresFD: Bool { get }
    /// Called before each vanilla block of a cell with the block's index (e.g. to rotate class labels); default: none.
    func beginBlock(_ block: Int)
}

extension CurveScoreSource {
    public func measure(_ samples: [Float], into row: inout CurveRow) throws {}
    public var measuresFD: Bool { false }
    public func beginBlock(_ block: Int) {}
}

/// The exact-score testbed (LowRankGaussianMixture) as a curves source. Testbed units are image-like ([0,1]-pixel
/// scale), so the DMCMC CIFAR10 constants apply: σ_max 50, τ = 0.01, no clamp (the data is not confined to [0,1]).
public final class TestbedScoreSource: CurveScoreSource {
    public let spec: LowRankMixtureSpec
    public let testbed: LowRankGaussianMixture
    public let sigmaMax: Double
    public let finish: FinishSettings

    public init(spec: LowRankMixtureSpec, sigmaMax: Double = 50, tau: Double = 0.01) {
        self.spec = spec
        self.sigmaMax = sigmaMax
        finish = FinishSettings(tau: tau, clamp: nil)
        testbed = LowRankGaussianMixture(spec, levelSigmaMax: sigmaMax)
    }

    public var label: String { spec.label + ",sigma_max=\(sigmaMax),tau=\(finish.tau)" }
    public var dimension: Int { spec.dimension }
    public var denoiser: Denoiser { testbed }
    public var levelEstimator: NoiseLevelEstimator? { testbed }

    public func referenceMoments() throws -> GaussianMoments {
        GaussianMoments(mean: testbed.dataMean(), covariance: testbed.dataCovariance())
    }

    public func exactSamples(count: Int, seed: UInt64) -> [Float]? {
        testbed.sample(count: count, seed: seed ^ 0xF100_F100)
    }
}
