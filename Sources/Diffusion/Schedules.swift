// Noise schedules, built per sample from that sample's own start level s (for DLG, the chain's own s_min): the
// Karras ρ-grid as well as the VE SDE's levels and g(t).
// All σ in the sampler's data units ([0,1]-pixel units for images).

/// The Karras ρ-grid of KAR1/KAR2 (Karras et al. 2022, Eq. 5): N grid points including the final 0, i.e. M = N−1
/// non-zero levels σ_i = (s^{1/ρ} + i/(M−1)·(σ_lo^{1/ρ} − s^{1/ρ}))^ρ, i = 0..M−1, so σ_0 = s, σ_{M−1} = σ_lo, σ_M = 0.
public func karrasSigmas(start s: Double, gridPoints n: Int, sigmaLow: Double = 0.01, rho: Double = 7) -> [Double] {
    precondition(n >= 3, "Karras grid needs N ≥ 3 grid points (N counts the final 0), got \(n)")
    let m = n - 1
    let a = dpow(s, 1 / rho), b = dpow(sigmaLow, 1 / rho)
    var sig = (0..<m).map { i in dpow(a + Double(i) / Double(m - 1) * (b - a), rho) }
    sig.append(0)
    return sig
}

/// The score_sde VE SDE (`sde_lib.py` `VESDE`) of one sample whose σ_max is its start level s.
public struct VESDE: Sendable {
    public let sigmaMin: Double
    public let start: Double

    public init(sigmaMin: Double = 0.01, start: Double) {
        self.sigmaMin = sigmaMin
        self.start = start
    }

    /// ln(s/σ_min): g(t)² = 2σ(t)²·ln(s/σ_min).
    public var logRatio: Double { dlog(start / sigmaMin) }
    /// Continuous level σ(t) = σ_min·(s/σ_min)^t, the score-network input.
    public func sigma(at t: Double) -> Double { sigmaMin * dexp(t * logRatio) }
    /// g(t)² = d(σ²)/dt.
    public func gSquared(at t: Double) -> Double { let s = sigma(at: t); return 2 * s * s * logRatio }
    /// Discrete level σ_j = σ_min·(s/σ_min)^{j/(N−1)}, j = 0..N−1 (σ_0 = σ_min, σ_{N−1} = s).
    public func discreteSigma(_ j: Int, steps n: Int) -> Double {
        sigmaMin * dexp(Double(j) / Double(n - 1) * logRatio)
    }
}

/// PC time grid t_i = 1 − i·(1−ε_t)/(N−1), i = 0..N−1: from 1 down to ε_t (score_sde `sampling_eps`).
@inline(__always)
public func predictorTime(_ i: Int, steps n: Int, endTime: Double) -> Double {
    1 - Double(i) * (1 - endTime) / Double(n - 1)
}
