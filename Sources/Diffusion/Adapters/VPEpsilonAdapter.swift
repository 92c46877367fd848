// Discrete DDPM ε-prediction model → VE denoiser (Karras et al. 2022 Table 1: c_skip = 1, c_out = −σ, c_in = 1/√(σ²+1)).
//
// In model units y: D_y(y; σ_y) = y − σ_y·ε_φ(y/√(1+σ_y²), j), where j is the index of the DDPM table entry
// σ_j = √(1/ᾱ_j − 1) nearest to σ_y (EDM rounds the same way; a DLG level set equal to the table needs no rounding).
// In sampler units x (y = a·x + b, σ_y = a·σ_x): D_x = x − σ_x·ε̂.

/// A network predicting the noise ε from a VP state x_t = √ᾱ·y₀ + √(1−ᾱ)·ε, conditioned on the integer DDPM step.
/// Layout as `Denoiser`; `timesteps[b]` is the original step index 0..T−1 (DiT convention), passed as Double.
public protocol EpsilonModel: AnyObject {
    var dimension: Int { get }
    func predictNoise(_ xt: UnsafePointer<Float>, timesteps: UnsafePointer<Double>, batch: Int,
                      into out: UnsafeMutablePointer<Float>)
}

/// An ε-model that also outputs DDPM's learned-range variance channels v (DiT with learn_sigma): `fraction`
/// receives f = (v + 1)/2 per element, same layout as `out`.
public protocol LearnedVarianceEpsilonModel: EpsilonModel {
    func predictNoise(_ xt: UnsafePointer<Float>, timesteps: UnsafePointer<Double>, batch: Int,
                      into out: UnsafeMutablePointer<Float>, varianceFraction: UnsafeMutablePointer<Float>)
}

/// The discrete DDPM noise table: linear β from `betaStart` to `betaEnd` over `steps` steps.
public struct DDPMTable: Sendable {
    /// σ_j = √(1/ᾱ_j − 1) in model units, increasing with j (≈0.0100 … ≈157.4 for the default table).
    public let sigmas: [Double]

    public init(betaStart: Double = 1e-4, betaEnd: Double = 0.02, steps: Int = 1000) {
        precondition(steps >= 2, "DDPM table needs at least 2 steps")
        var alphaBar = 1.0
        var s = [Double]()
        s.reserveCapacity(steps)
        for j in 0..<steps {
            let beta = betaStart + (betaEnd - betaStart) * Double(j) / Double(steps - 1)
            alphaBar *= 1 - beta
            s.append((1 / alphaBar - 1).squareRoot())
        }
        sigmas = s
    }

    /// Index of the entry nearest to σ (absolute difference, as EDM's `round_sigma`).
    public func nearestIndex(_ sigma: Double) -> Int {
        var lo = 0, hi = sigmas.count - 1
        if sigma <= sigmas[lo] { return lo }
        if sigma >= sigmas[hi] { return hi }
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if sigmas[mid] <= sigma { lo = mid } else { hi = mid }
        }
        return (sigma - sigmas[lo]) <= (sigmas[hi] - sigma) ? lo : hi
    }
}

public final class VPEpsilonDenoiser: LearnedVarianceDenoiser {
    public let model: EpsilonModel
    public let table: DDPMTable
    public let units: DataUnits
    private var input: UnsafeMutablePointer<Float>
    private var steps: UnsafeMutablePointer<Double>
    private var capacity: Int = 0

    public init(_ model: EpsilonModel, table: DDPMTable = DDPMTable(), units: DataUnits = .native) {
        self.model = model
        self.table = table
        self.units = units
        input = .allocate(capacity: 1)
        steps = .allocate(capacity: 1)
    }
    deinit { input.deallocate(); steps.deallocate() }

    public var dimension: Int { model.dimension }

    public var predictsVariance: Bool { model is LearnedVarianceEpsilonModel }

    public func denoise(_ x: UnsafePointer<Float>, sigma: UnsafePointer<Double>, batch: Int,
                        into out: UnsafeMutablePointer<Float>) {
        prepare(x, sigma: sigma, batch: batch)
        model.predictNoise(input, timesteps: steps, batch: batch, into: out)
        finish(x, sigma: sigma, batch: batch, out: out)
    }

    public func denoise(_ x: UnsafePointer<Float>, sigma: UnsafePointer<Double>, batch: Int,
                        into out: UnsafeMutablePointer<Float>, varianceFraction: UnsafeMutablePointer<Float>) {
        guard let learned = model as? LearnedVarianceEpsilonModel else {
            preconditionFailure("VPEpsilonDenoiser: the model predicts no variance (check predictsVariance)")
        }
        prepare(x, sigma: sigma, batch: batch)
        learned.predictNoise(input, timesteps: steps, batch: batch, into: out, varianceFraction: varianceFraction)
        finish(x, sigma: sigma, batch: batch, out: out)
    }

    /// Model input y/√(1+σ_y²) (= x_t of the nearest table step) and that step's index, per sample.
    private func prepare(_ x: UnsafePointer<Float>, sigma: UnsafePointer<Double>, batch: Int) {
        let d = dimension
        if batch > capacity {
            input.deallocate(); steps.deallocate()
            input = .allocate(capacity: batch * d)
            steps = .allocate(capacity: batch)
            capacity = batch
        }
        let a = Float(units.scale), b0 = Float(units.shift)
        for b in 0..<batch {
            let sy = units.scale * sigma[b]
            steps[b] = Double(table.nearestIndex(sy))
            let cIn = Float(1 / (1 + sy * sy).squareRoot())
            let xb = x + b * d, ib = input + b * d
            for i in 0..<d { ib[i] = (a * xb[i] + b0) * cIn }
        }
    }

    /// D_x = x − σ_x·ε̂, in place over the ε̂ in `out`.
    private func finish(_ x: UnsafePointer<Float>, sigma: UnsafePointer<Double>, batch: Int, out: UnsafeMutablePointer<Float>) {
        let d = dimension
        for b in 0..<batch {
            let sx = Float(sigma[b])
            let xb = x + b * d, ob = out + b * d
            for i in 0..<d { ob[i] = xb[i] - sx * ob[i] }
        }
    }
}
