import Tensor

/// Runs a layer's routed experts on local weights, splitting the rows evenly over `Parallel.threads` workers
/// (an expert's rows may be split between two workers; each worker runs its experts' GEMMs one after another).
/// Scratch is allocated once, per worker.
public final class InProcessExpertExecutor: ExpertExecutor {
    public let weights: DiTWeights
    private let experts: [[SwiGLUExpert]]  // [layer][expert]
    private var hidden: [FloatBuffer] = []
    private var widen: [FloatBuffer?] = []

    public init(weights: DiTWeights) {
        self.weights = weights
        let c = weights.config
        experts = (0..<c.depth).map { l in
            (0..<c.numExperts).map { e in
                let w = weights.expert(layer: l, expert: e)
                return SwiGLUExpert(gateUp: w.gateUp, down: w.down)
            }
        }
    }

    private func ensureScratch(workers: Int) {
        while hidden.count < workers {
            let c = weights.config
            hidden.append(FloatBuffer(count: SwiGLUExpert.hiddenScratchCount(width: c.expertHidden)))
            let w = experts.joined().map(\.widenScratchCount).max() ?? 0
            widen.append(w > 0 ? FloatBuffer(count: w) : nil)
        }
    }

    public func execute(_ s: ExpertShards) throws {
        let total = s.offsets[s.expertCount]
        let workers = max(1, min(Parallel.threads, total / 64))
        ensureScratch(workers: workers)
        let layer = experts[s.layer]
        Parallel.run(workers) { w in
            // Worker w owns global rows [lo, hi), whatever experts they belong to.
            let lo = total * w / workers, hi = total * (w + 1) / workers
            let hiddenPtr = hidden[w].pointer, widenPtr = widen[w]?.pointer
            for e in 0..<s.expertCount {
                let a = max(lo, s.offsets[e]), b = min(hi, s.offsets[e + 1])
                if a >= b { continue }
                layer[e].apply(s.input + a * s.dim, rows: b - a, into: s.output + a * s.dim, rowScale: s.gateWeights + a,
                               accumulate: false, hidden: hiddenPtr, widen: widenPtr)
            }
        }
    }
}
