// Rectified-flow velocity model → VE denoiser.
//
// RF convention (DiT-MoE `diffusion/rectified_flow.py`): z_t = (1−t)·y₀ + t·ε, t=0 data, t=1 noise,
// v = ε − y₀, model time t ∈ (0,1] as a float. A VE state y = y₀ + σ_y·ε is the RF state z = y/(1+σ_y) at
// t = σ_y/(1+σ_y); then ŷ₀ = z − t·v̂. In sampler units x (y = a·x + b): D_x = (ŷ₀ − b)/a.

/// A network predicting the velocity v = ε − y₀ at RF time t. Layout as `Denoiser`.
public protocol VelocityModel: AnyObject {
    var dimension: Int { get }
    func predictVelocity(_ z: UnsafePointer<Float>, time: UnsafePointer<Double>, batch: Int,
                         into out: UnsafeMutablePointer<Float>)
}

public final class RectifiedFlowDenoiser: Denoiser {
    public let model: VelocityModel
    public let units: DataUnits
    private var state: UnsafeMutablePointer<Float>
    private var times: UnsafeMutablePointer<Double>
    private var capacity: Int = 0

    public init(_ model: VelocityModel, units: DataUnits = .native) {
        self.model = model
        self.units = units
        state = .allocate(capacity: 1)
        times = .allocate(capacity: 1)
    }
    deinit { state.deallocate(); times.deallocate() }

    public var dimension: Int { model.dimension }

    /// RF time for a VE noise level in model units.
    public static func time(forSigma sigmaY: Double) -> Double { sigmaY / (1 + sigmaY) }

    public func denoise(_ x: UnsafePointer<Float>, sigma: UnsafePointer<Double>, batch: Int,
                        into out: UnsafeMutablePointer<Float>) {
        let d = dimension
        if batch > capacity {
            state.deallocate(); times.deallocate()
            state = .allocate(capacity: batch * d)
            times = .allocate(capacity: batch)
            capacity = batch
        }
        let a = Float(units.scale), b0 = Float(units.shift)
        for b in 0..<batch {
            let sy = units.scale * sigma[b]
            times[b] = Self.time(forSigma: sy)
            let inv = Float(1 / (1 + sy))
            let xb = x + b * d, zb = state + b * d
            for i in 0..<d { zb[i] = (a * xb[i] + b0) * inv }
        }
        model.predictVelocity(state, time: times, batch: batch, into: out)
        for b in 0..<batch {
            let t = Float(times[b])
            let zb = state + b * d, ob = out + b * d
            for i in 0..<d { ob[i] = ((zb[i] - t * ob[i]) - b0) / a }
        }
    }
}
