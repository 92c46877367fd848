import Foundation

/// AdamW (decoupled weight decay, as `torch.optim.AdamW`) over flat parameter sets, with global-norm gradient
/// clipping and an exponential moving average of the weights.
///
/// Per value, at step s = 1, 2, …: p ← p·(1 − lr·wd); m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
/// p ← p − lr·(m/(1−β₁ˢ)) / (√(v/(1−β₂ˢ)) + ε). Values whose key is fixed (`pos_embed`) are never updated.
public final class AdamW {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    public var weightDecay: Float
    public let m: ParameterSet
    public let v: ParameterSet
    /// Steps taken (the bias corrections use it); saved in checkpoints.
    public var step: Int = 0
    /// [start, end) ranges of values the optimiser updates.
    private let trainable: [Range<Int>]

    public init(like params: ParameterSet, weightDecay: Float = 0) {
        self.weightDecay = weightDecay
        m = ParameterSet(like: params)
        v = ParameterSet(like: params)
        var ranges: [Range<Int>] = []
        for s in params.specs where !AdamW.isFixed(s.key) {
            let o = params.offsets[s.key]!, n = s.shape.reduce(1, *)
            if let last = ranges.last, last.upperBound == o { ranges[ranges.count - 1] = last.lowerBound..<(o + n) } else { ranges.append(o..<(o + n)) }
        }
        trainable = ranges
    }

    /// Parameters upstream keeps fixed (`requires_grad=False`): the sin-cos position table.
    public static func isFixed(_ key: String) -> Bool { key == "pos_embed" }

    /// Global L2 norm of the trainable gradients.
    public func gradientNorm(_ grads: ParameterSet) -> Double {
        var s = 0.0
        for r in trainable { for i in r { let g = Double(grads.values[i]); s += g * g } }
        return s.squareRoot()
    }

    /// One update with learning rate `lr`. When `clip > 0` and the gradient norm exceeds it, gradients are scaled
    /// by clip/norm first (as `torch.nn.utils.clip_grad_norm_`). Returns the norm before clipping.
    @discardableResult
    public func update(_ params: ParameterSet, grads: ParameterSet, lr: Float, clip: Float) -> Double {
        let norm = gradientNorm(grads)
        let scale: Float = clip > 0 && norm > Double(clip) ? Float(Double(clip) / (norm + 1e-6)) : 1
        step += 1
        let bc1 = 1 - pow(beta1, Float(step)), bc2 = 1 - pow(beta2, Float(step))
        let p = params.values, g = grads.values, m = m.values, v = v.values
        let b1 = beta1, b2 = beta2, eps = epsilon, decay = 1 - lr * weightDecay, stepSize = lr / bc1
        let sqrtBc2 = bc2.squareRoot()
        for r in trainable {
            for i in r {
                let gi = g[i] * scale
                m[i] = b1 * m[i] + (1 - b1) * gi
                v[i] = b2 * v[i] + (1 - b2) * gi * gi
                p[i] = p[i] * decay - stepSize * m[i] / (v[i].squareRoot() / sqrtBc2 + eps)
            }
        }
        return norm
    }
}

/// ema ← decay·ema + (1 − decay)·params over every value (fixed ones stay equal).
public func updateEMA(_ ema: ParameterSet, from params: ParameterSet, decay: Float) {
    let e = ema.values, p = params.values
    for i in 0..<ema.count { e[i] = decay * e[i] + (1 - decay) * p[i] }
}
