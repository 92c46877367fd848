/// Multi-head scaled dot-product attention for one sample, through GEMM, no mask.
///
/// Layouts (row-major Float32):
/// - `qkv` is `[tokens, 3·dim]` with `ld = 3·dim`: q in columns `[0, dim)`, k in `[dim, 2·dim)`, v in
///   `[2·dim, 3·dim)`; head h owns columns `h·headDim ..< (h+1)·headDim` inside each (timm's `[T, 3, NH, hd]`).
/// - `out` is `[tokens, dim]` (stride `dim`), heads concatenated in head order.
/// - `scores` is scratch of at least `tokens²` floats.
/// Computes softmax(scale · q_h k_hᵀ) v_h for `head` only; callers loop or parallelise over heads.
@inlinable
public func attentionHead(qkv: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, tokens: Int, dim: Int,
                          headDim: Int, head: Int, scale: Float, scores: UnsafeMutablePointer<Float>) {
    let ld = 3 * dim
    let q = qkv + head * headDim, k = qkv + dim + head * headDim, v = qkv + 2 * dim + head * headDim
    gemm(transB: true, m: tokens, n: tokens, k: headDim, alpha: scale, a: q, lda: ld, b: k, ldb: ld,
         c: scores, ldc: tokens)
    softmaxRowsInPlace(scores, rows: tokens, width: tokens)
    gemm(transB: false, m: tokens, n: headDim, k: tokens, a: scores, lda: tokens, b: v, ldb: ld,
         c: out + head * headDim, ldc: dim)
}

/// Attention for `batch` samples laid out consecutively (`qkv` is `[batch·tokens, 3·dim]`, `out` is
/// `[batch·tokens, dim]`), parallel over (sample, head) pairs. `scores` holds `Parallel.threads · tokens²`
/// floats: one block per worker.
public func multiHeadAttention(qkv: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, batch: Int,
                               tokens: Int, dim: Int, heads: Int, scores: UnsafeMutablePointer<Float>) {
    let headDim = dim / heads
    let scale = 1 / Float(headDim).squareRoot()
    Parallel.forChunks(batch * heads) { worker, pairs in
        let s = scores + worker * tokens * tokens
        for pair in pairs {
            let b = pair / heads, h = pair % heads
            attentionHead(qkv: qkv + b * tokens * 3 * dim, out: out + b * tokens * dim, tokens: tokens, dim: dim,
                          headDim: headDim, head: h, scale: scale, scores: s)
        }
    }
}
