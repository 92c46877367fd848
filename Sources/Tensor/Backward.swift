// Backward passes of the kernels in this module (training). Each takes the forward's saved values and the gradient
// of the loss with respect to the forward's output (`d…`), and returns gradients with respect to inputs and
// parameters. Parameter gradients are always accumulated (`+=`): a training step zeroes them once.

/// LayerNorm statistics of each row, saved by the forward for the backward: `mean[r]`, `rstd[r] = 1/√(var + eps)`
/// (biased variance, as torch.nn.LayerNorm).
@inlinable
public func layerNormStatistics(_ x: UnsafePointer<Float>, rows: Int, width: Int, eps: Float, ldx: Int? = nil,
                                mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>) {
    let ldx = ldx ?? width, n = Float(width)
    for r in 0..<rows {
        let xr = x + r * ldx
        let m = sum(xr, count: width) / n
        mean[r] = m
        rstd[r] = 1 / (sumOfSquaredDeviations(xr, count: width, from: m) / n + eps).squareRoot()
    }
}

/// Backward of y = x̂·γ + β with x̂ = (x − mean)·rstd (γ, β optional: plain LayerNorm without affine).
/// `dx = rstd·(g − mean(g) − x̂·mean(g ⊙ x̂))` with g = dy ⊙ γ. `dx` is overwritten, or added to when `accumulate`;
/// `dWeight += Σ_r dy ⊙ x̂`, `dBias += Σ_r dy`. Rows of `x`/`dy`/`dx` use strides `ld` (default `width`).
@inlinable
public func layerNormBackward(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, rows: Int, width: Int,
                              mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                              weight: UnsafePointer<Float>? = nil, dWeight: UnsafeMutablePointer<Float>? = nil,
                              dBias: UnsafeMutablePointer<Float>? = nil,
                              dx: UnsafeMutablePointer<Float>, accumulate: Bool, ld: Int? = nil) {
    let ld = ld ?? width, n = Float(width)
    for r in 0..<rows {
        let xr = x + r * ld, dyr = dy + r * ld, dxr = dx + r * ld
        let m = mean[r], s = rstd[r]
        var sumG: Float = 0, sumGX: Float = 0
        for i in 0..<width {
            let xhat = (xr[i] - m) * s
            let g = weight.map { dyr[i] * $0[i] } ?? dyr[i]
            sumG += g; sumGX += g * xhat
            if let dWeight { dWeight[i] += dyr[i] * xhat }
            if let dBias { dBias[i] += dyr[i] }
        }
        let meanG = sumG / n, meanGX = sumGX / n
        for i in 0..<width {
            let xhat = (xr[i] - m) * s
            let g = weight.map { dyr[i] * $0[i] } ?? dyr[i]
            let v = s * (g - meanG - xhat * meanGX)
            dxr[i] = accumulate ? dxr[i] + v : v
        }
    }
}

/// Backward of a row softmax p = softmax(z): `dz = p ⊙ (dp − ⟨dp, p⟩)`, in place over `dp` (rows of `width`,
/// strides `ld`).
@inlinable
public func softmaxBackwardInPlace(probs p: UnsafePointer<Float>, grad dp: UnsafeMutablePointer<Float>, rows: Int,
                                   width: Int, ld: Int? = nil) {
    let ld = ld ?? width
    for r in 0..<rows {
        let pr = p + r * ld, gr = dp + r * ld
        var dot: Float = 0
        for i in 0..<width { dot += pr[i] * gr[i] }
        for i in 0..<width { gr[i] = pr[i] * (gr[i] - dot) }
    }
}

/// d SiLU(v)/dv = σ(v)·(1 + v·(1 − σ(v))).
@inlinable @inline(__always) public func siluDerivative(_ v: Float) -> Float {
    let s = 1 / (1 + fastExp(-v))
    return s * (1 + v * (1 - s))
}

/// d geluTanh(v)/dv for the tanh approximation 0.5·v·(1 + tanh(u)), u = √(2/π)·(v + 0.044715·v³).
@inlinable @inline(__always) public func geluTanhDerivative(_ v: Float) -> Float {
    let c: Float = 0.7978845608028654
    let th = fastTanh(c * (v + 0.044715 * v * v * v))
    return 0.5 * (1 + th) + 0.5 * v * (1 - th * th) * c * (1 + 3 * 0.044715 * v * v)
}

/// Backward of SwiGLU a = SiLU(g) ⊙ u on fused rows `[g | u]` (the pre-activation, stride `2·width`):
/// writes `[dg | du]` into `dFused` (stride `2·width`) from `da` (stride `ldDa`).
@inlinable
public func swigluBackward(preActivation fused: UnsafePointer<Float>, da: UnsafePointer<Float>, ldDa: Int,
                           rows: Int, width: Int, dFused: UnsafeMutablePointer<Float>) {
    for r in 0..<rows {
        let g = fused + r * 2 * width, u = g + width, d = da + r * ldDa
        let dg = dFused + r * 2 * width, du = dg + width
        for i in 0..<width {
            dg[i] = d[i] * u[i] * siluDerivative(g[i])
            du[i] = d[i] * silu(g[i])
        }
    }
}

/// `dBias[j] += Σ_r dy[r, j]` over `rows` rows of `width` (stride `ld`).
@inlinable
public func addColumnSums(_ dy: UnsafePointer<Float>, rows: Int, width: Int, ld: Int? = nil,
                          into dBias: UnsafeMutablePointer<Float>) {
    let ld = ld ?? width
    for r in 0..<rows { addInPlace(dBias, dy + r * ld, count: width) }
}

/// Backward of `attentionHead` for one (sample, head): O = P·V with P = softmax(scale·Q·Kᵀ) saved by the forward
/// (`probs`, `[tokens, tokens]`). Given dO (columns of head `head` in `dOut`, stride `dim`), writes dQ, dK, dV into
/// the head's columns of `dqkv` (`[tokens, 3·dim]`, the same layout as `qkv`). `scratch` holds `tokens²` floats.
@inlinable
public func attentionHeadBackward(qkv: UnsafePointer<Float>, probs: UnsafePointer<Float>, dOut: UnsafePointer<Float>,
                                  dqkv: UnsafeMutablePointer<Float>, tokens: Int, dim: Int, headDim: Int, head: Int,
                                  scale: Float, scratch dP: UnsafeMutablePointer<Float>) {
    let ld = 3 * dim, off = head * headDim
    let q = qkv + off, k = qkv + dim + off, v = qkv + 2 * dim + off
    let dq = dqkv + off, dk = dqkv + dim + off, dv = dqkv + 2 * dim + off
    let dO = dOut + off
    // dV = Pᵀ·dO; dP = dO·Vᵀ; dS = P ⊙ (dP − rowsum(dP ⊙ P)); dQ = scale·dS·K; dK = scale·dSᵀ·Q.
    gemm(transA: true, transB: false, m: tokens, n: headDim, k: tokens, a: probs, lda: tokens, b: dO, ldb: dim,
         c: dv, ldc: ld)
    gemm(transB: true, m: tokens, n: tokens, k: headDim, a: dO, lda: dim, b: v, ldb: ld, c: dP, ldc: tokens)
    softmaxBackwardInPlace(probs: probs, grad: dP, rows: tokens, width: tokens)
    gemm(transB: false, m: tokens, n: headDim, k: tokens, alpha: scale, a: dP, lda: tokens, b: k, ldb: ld,
         c: dq, ldc: ld)
    gemm(transA: true, transB: false, m: tokens, n: headDim, k: tokens, alpha: scale, a: dP, lda: tokens, b: q, ldb: ld,
         c: dk, ldc: ld)
}
