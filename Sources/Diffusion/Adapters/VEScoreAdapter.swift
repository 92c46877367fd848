// VE score model → denoiser by Tweedie's formula: D(x;σ) = x + σ²·s_θ(x, σ).

/// A network that returns ∇ₓ log p_σ(x) directly (NCSN++ with scale_by_sigma), same layout as `Denoiser`.
public protocol ScoreModel: AnyObject {
    var dimension: Int { get }
    func score(_ x: UnsafePointer<Float>, sigma: UnsafePointer<Double>, batch: Int, into out: UnsafeMutablePointer<Float>)
}

public final class VEScoreDenoiser: Denoiser {
    public let model: ScoreModel
    public init(_ model: ScoreModel) { self.model = model }
    public var dimension: Int { model.dimension }

    public func denoise(_ x: UnsafePointer<Float>, sigma: UnsafePointer<Double>, batch: Int,
                        into out: UnsafeMutablePointer<Float>) {
        model.score(x, sigma: sigma, batch: batch, into: out)
        let d = dimension
        for b in 0..<batch {
            let s2 = Float(sigma[b] * sigma[b])
            let xb = x + b * d, ob = out + b * d
            for i in 0..<d { ob[i] = xb[i] + s2 * ob[i] }
        }
    }
}
