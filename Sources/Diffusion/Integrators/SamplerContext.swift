// What every integrator shares: the counted denoiser, the noise, and the fixed constants (DMCMC's values).

public struct SamplerContext {
    /// The model, wrapped so that NFE is counted at the call.
    public let denoiser: CountingDenoiser
    /// Noise for KAR2 churn, RD, EM and DLG.
    public let noise: NoiseSource
    /// VE SDE σ_min (score_sde: 0.01).
    public var sigmaMin: Double = 0.01
    /// End time ε_t of the PC and ODE samplers (score_sde `sampling_eps`: 1e-5).
    public var endTime: Double = 1e-5
    /// Smallest non-zero level of the Karras grid (0.01).
    public var karrasSigmaLow: Double = 0.01
    /// Karras ρ (7).
    public var karrasRho: Double = 7

    public init(denoiser: CountingDenoiser, noise: NoiseSource) {
        self.denoiser = denoiser
        self.noise = noise
    }

    public var dimension: Int { denoiser.dimension }
}

/// What an integrator run reports. `nfe` is read from the counting wrapper (calls during this run).
public struct IntegratorReport: Sendable, Equatable {
    public var nfe: Int
    /// RK45 only: the solver's own counters (nfev = 2 + 6·attempted steps).
    public var rk45: RK45Statistics?
    public init(nfe: Int, rk45: RK45Statistics? = nil) { self.nfe = nfe; self.rk45 = rk45 }
}
