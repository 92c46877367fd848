// The "load_balance" part's measurement: a real denoising run of a MoE model (DiT-MoE's own sampler, spec
// ditmoe §4) with a routing observer that attributes every token's top-k experts to (layer, denoising step,
// token position, class). Like the paper's analysis scripts (§5.2), only the conditional half of the CFG batch is
// counted unless `count_unconditional` is set (then the null class is its own row).
import DiT
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
        let sampler = DiTSamplerRun(sampler: suite.sampler, steps: suite.steps, cfgScale: Float(suite.cfgScale),
                                    channels: c.inChannels, side: c.inputSize, outChannels: c.outChannels, nullClass: c.nullClass)
        let labels = suite.classes.flatMap { [Int](repeating: $0, count: suite.samplesPerClass) }
        observer.labels = labels + [Int](repeating: c.nullClass, count: labels.count)
        let call: DiTCall = { x, t, y, batch, cfg, out in
            if let cfg {
                try model.forwardWithCFG(x: x, t: t, y: y, batch: batch, cfgScale: cfg, out: out)
            } else {
                try model.forward(x: x, t: t, y: y, batch: batch, out: out)
            }
        }
        let start = Date()
        _ = try sampler.sample(labels: labels, seed: seed, model: call) { step in
            observer.step = step
            if step % max(1, suite.steps / 5) == 0 || step == suite.steps - 1 {
                progress.say(String(format: "load balance: step %d/%d (%.0f s)", step + 1, suite.steps, Date().timeIntervalSince(start)))
            }
        }
        return recorder
    }
}
