import Tensor
// Denoising Langevin Gibbs (DMCMC, Kim & Ye 2022, arXiv 2209.14593): B chains on (x, σ), each iteration a
// Langevin x-step (1 NFE) then a Gibbs σ-step (argmax of the level estimator, 0 NFE). Each block hands the block's
// minimum-σ state to an integrator; the chains continue from their last state, not from the handed-off one.
// NFE per emitted sample = n_skip + integrator NFE + 1.

public struct DLGSettings: Sendable, Equatable {
    /// ε_main: the constant Langevin step, a variance in data units² (not scaled by σ²).
    public var epsilon: Double
    /// Langevin iterations per block (per emitted sample).
    public var nSkip: Int
    /// Warm-up (DMCMC's `Sampling Demo.ipynb`): KAR2 with this many grid points from σ_max, then + perturbation·z,
    /// a σ-step, then the listed (iterations, ε) phases; ε = nil means ε_main.
    /// CIFAR10: 20, 0.5, [(10, 0.5), (10, main)].
    public var warmupGridPoints: Int = 20
    public var warmupPerturbation: Double = 0.5
    public var warmupPhases: [WarmupPhase] = [WarmupPhase(iterations: 10, epsilon: 0.5), WarmupPhase(iterations: 10, epsilon: nil)]

    public struct WarmupPhase: Sendable, Equatable {
        public var iterations: Int
        public var epsilon: Double?
        public init(iterations: Int, epsilon: Double?) { self.iterations = iterations; self.epsilon = epsilon }
    }

    public init(epsilon: Double, nSkip: Int) {
        precondition(nSkip >= 0 && epsilon > 0, "DLG needs ε > 0 and n_skip ≥ 0")
        self.epsilon = epsilon
        self.nSkip = nSkip
    }
}

/// What one block reports.
public struct DLGBlockReport: Sendable, Equatable {
    /// NFE per emitted sample for this block, as counted: n_skip + integrator + Tweedie.
    public var nfe: Int
    public var integrator: IntegratorReport
    /// Mean over chains of the hand-off level s_min.
    public var meanStartSigma: Double
}

public final class DLGChains {
    public let chains: Int
    public let dimension: Int
    public let estimator: NoiseLevelEstimator
    public let context: SamplerContext
    /// Current chain states x ([chains, dimension]) and level indices (into estimator.levels).
    public let x: UnsafeMutablePointer<Float>
    public private(set) var level: [Int]
    private let den: FloatBuffer, z: FloatBuffer, sig: DoubleBuffer, idx: UnsafeMutablePointer<Int>

    public init(chains: Int, estimator: NoiseLevelEstimator, context: SamplerContext) {
        self.chains = chains
        dimension = context.dimension
        self.estimator = estimator
        self.context = context
        let count = chains * dimension
        x = .allocate(capacity: count)
        x.initialize(repeating: 0, count: count)
        level = Array(repeating: 0, count: chains)
        den = FloatBuffer(count); z = FloatBuffer(count); sig = DoubleBuffer(chains)
        idx = .allocate(capacity: chains)
    }
    deinit { x.deallocate(); idx.deallocate() }

    /// σ of each chain's current level.
    public var sigmas: [Double] { level.map { estimator.levels[$0] } }

    /// Warm-up, as `DLGSettings` describes. Returns the NFE spent per chain, which the caller should not count per
    /// sample.
    public func warmUp(_ s: DLGSettings) -> Int {
        let calls0 = context.denoiser.calls
        let count = chains * dimension
        let sigmaMax = estimator.levels.sigmaMax
        context.noise.fillNormal(x, count: count)
        for k in 0..<count { x[k] *= Float(sigmaMax) }
        _ = kar2(x, start: Array(repeating: sigmaMax, count: chains), gridPoints: s.warmupGridPoints, context: context)
        context.noise.fillNormal(z.p, count: count)
        let pert = Float(s.warmupPerturbation)
        for k in 0..<count { x[k] += pert * z.p[k] }
        gibbsStep()
        for phase in s.warmupPhases {
            for _ in 0..<phase.iterations { iterate(epsilon: phase.epsilon ?? s.epsilon) }
        }
        return context.denoiser.calls - calls0
    }

    /// One DLG iteration: Langevin x-step with the σ of the previous x (1 NFE), then the σ-step on the new x.
    public func iterate(epsilon: Double) {
        langevinStep(epsilon: epsilon)
        gibbsStep()
    }

    /// x ← x + (ε/2)·s_θ(x, σ) + √ε·z, score s = (D − x)/σ².
    public func langevinStep(epsilon: Double) {
        let d = dimension, count = chains * d
        for b in 0..<chains { sig.p[b] = estimator.levels[level[b]] }
        context.denoiser.denoise(x, sigma: sig.p, batch: chains, into: den.p)
        context.noise.fillNormal(z.p, count: count)
        let amp = Float(epsilon.squareRoot())
        for b in 0..<chains {
            let f = Float(0.5 * epsilon / (sig.p[b] * sig.p[b]))
            for k in b * d..<(b + 1) * d { x[k] += f * (den.p[k] - x[k]) + amp * z.p[k] }
        }
    }

    /// σ ← σ_{k*}, k* = argmax of the estimator (0 NFE).
    public func gibbsStep() {
        estimator.mostLikelyLevel(x, batch: chains, into: idx)
        for b in 0..<chains { level[b] = idx[b] }
    }

    /// One block (one emitted sample per chain): n_skip iterations tracking the per-chain minimum-σ state (strict <,
    /// block start included), hand-off of (x_min, s_min) to `integrator`, the Tweedie step, output to `out`
    /// ([chains, d]).
    public func nextBlock(_ s: DLGSettings, integrator: Integrator, finish: FinishSettings,
                          into out: UnsafeMutablePointer<Float>) throws -> DLGBlockReport {
        let d = dimension
        let calls0 = context.denoiser.calls
        out.update(from: x, count: chains * d)                       // x_min ← x
        var sMin = sigmas                                            // s_min ← s
        for _ in 0..<s.nSkip {
            iterate(epsilon: s.epsilon)
            for b in 0..<chains {
                let sb = estimator.levels[level[b]]
                if sb < sMin[b] {
                    sMin[b] = sb
                    (out + b * d).update(from: x + b * d, count: d)
                }
            }
        }
        let report = try integrator.integrate(out, start: sMin, context: context)
        _ = tweedie(out, batch: chains, tau: finish.tau, clamp: finish.clamp, context: context)
        return DLGBlockReport(nfe: context.denoiser.calls - calls0, integrator: report,
                              meanStartSigma: sMin.reduce(0, +) / Double(chains))
    }
}
