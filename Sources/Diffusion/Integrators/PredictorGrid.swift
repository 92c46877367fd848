// Per-step levels shared by the score_sde PC predictors RD, PF and EM (score_sde `sampling.py`).
// Step i = 0..N−1 uses j = N−1−i (score_sde's float32 floor(t_i·(N−1)) can round to N−2−i for large N); the score
// is evaluated at the continuous σ_b(t_i), the step size uses the discrete σ_{b,j} and σ_{b,j−1} (0 when j = 0).

struct PredictorGrid {
    let sdes: [VESDE]
    let steps: Int
    let endTime: Double

    init(start: [Double], steps: Int, context c: SamplerContext) {
        precondition(steps >= 2, "PC samplers need N ≥ 2 steps, got \(steps)")
        sdes = start.map { VESDE(sigmaMin: c.sigmaMin, start: $0) }
        self.steps = steps
        endTime = c.endTime
    }

    /// t_i of step i.
    func time(_ i: Int) -> Double { predictorTime(i, steps: steps, endTime: endTime) }

    /// Fills the network input σ_b(t_i) for every sample.
    func fillNetworkSigma(step i: Int, into out: UnsafeMutablePointer<Double>) {
        let t = time(i)
        for b in 0..<sdes.count { out[b] = sdes[b].sigma(at: t) }
    }

    /// σ_{b,j}² − σ_{b,j−1}² with j = N−1−i.
    func varianceDrop(step i: Int, sample b: Int) -> Double {
        let j = steps - 1 - i
        let s = sdes[b].discreteSigma(j, steps: steps)
        let prev = j > 0 ? sdes[b].discreteSigma(j - 1, steps: steps) : 0
        return s * s - prev * prev
    }
}
