// The "load_balance" part's measurement: a real denoising run of a MoE model (DiT-MoE's own sampler on the
// denoiser seam) with a routing observer that attributes every token's top-k experts to (layer, denoising step,
// token position, class). Like DiT-MoE's `analysis/heatmap_*.py`, only the conditional half of the CFG batch is
// counted unless `count_unconditional` is set (then the null class is its own row).
import DiT
import Diffusion
import Foundation
import Metrics

final class StepRoutingObserver: RoutingObserver {
    let recorder: ExpertLoadRecorder
    var step = 0
    /// Class of each sample of the current CFG batch ([cond…, null…]).
    var labels: [Int] = []
    let countUnconditional: Bool

    init(recorder: ExpertLoadRecorder, countUnconditional: Bool) {
        self.recorder = recorder
        self.countUnconditional = countUnconditional
    }

    func observe(layer: Int, batch: Int, tokens: Int, topK: Int, experts: UnsafePointer<Int32>, weights: UnsafePointer<Float>) {
        let counted = countUnconditional ? batch : batch / 2
        for b in 0..<min(counted, labels.count) {
            recorder.recordImage(layer: layer, step: step, classLabel: labels[b],
                                 topK: UnsafeBufferPointer(start: experts + b * tokens * topK, count: tokens * topK), k: topK)
        }
    }
}

struct LoadBalanceRun {
    let suite: LoadBalanceSuite
    let progress: Progress

    /// Samples `samples_per_class` images of each class and returns the filled recorder.
    func run(model: DiTModel, seed: UInt64) throws -> ExpertLoadRecorder {
        let c = model.config
        let dims = RoutingDimensions(layers: c.depth, steps: suite.steps, positions: c.tokens, classes: c.numClasses + 1,
                                     experts: c.numExperts)
        let recorder = ExpertLoadRecorder(dims: dims)
        let observer = StepRoutingObserver(recorder: recorder, countUnconditional: suite.countUnconditional)
        model.observer = observer
        defer { model.observer = nil }
        let labels = suite.classes.flatMap { [Int](repeating: $0, count: suite.samplesPerClass) }
        observer.labels = labels + [Int](repeating: c.nullClass, count: labels.count)
        let eps = DiTEpsilonModel(model: model, labels: labels.map(Int32.init), cfgScale: Float(suite.cfgScale))
        let sampler = suite.sampler.sampler(steps: suite.steps)
        let denoiser: Denoiser = suite.sampler == .rectifiedFlow ? RectifiedFlowDenoiser(eps) : VPEpsilonDenoiser(eps)
        let context = SamplerContext(denoiser: CountingDenoiser(denoiser), noise: SeededNormalNoise(seed: seed))
        let start = Date()
        eps.onCall = { step in
            observer.step = step
            if step % max(1, suite.steps / 5) == 0 || step == suite.steps - 1 {
                progress.say(String(format: "load balance: step %d/%d (%.0f s)", step + 1, suite.steps, Date().timeIntervalSince(start)))
            }
        }
        var x = [Float](repeating: 0, count: labels.count * eps.dimension)
        _ = sampler.sample(&x, batch: labels.count, context: context)
        if let failure = eps.failure { throw failure }
        return recorder
    }
}
