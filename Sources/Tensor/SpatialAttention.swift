/// Single-head self-attention among the pixels of NCHW feature maps: the diffusers `Attention` block of the
/// AutoencoderKL mid block (heads = 1, head dim = channels), after its GroupNorm.
///
/// Per image, with `xn` the normalised input `[channels, pixels]` and PyTorch `[out, in]` weights (`[C, C]`):
///   Q = Wq·xn + bq,  K = Wk·xn + bk,  V = Wv·xn + bv            (each `[C, P]`: channel-major, one column a token)
///   S[i, j] = softmax_j( Σ_c Q[c, i]·K[c, j] / √C )                (`[P, P]`, row i = query pixel i)
///   O[c, i] = Σ_j V[c, j]·S[i, j]                                  (`[C, P]`)
///   y = Wo·O + bo (+ residual)
/// which is the token-major formula softmax(q kᵀ/√C)·v·Woᵀ with every matrix transposed, so no transposes are
/// materialised. `scratch` holds `spatialAttentionScratchCount(channels:pixels:)` floats; images run one after
/// another, each GEMM's rows split over `Parallel.threads` workers. `y` must not overlap `xn`; it may be `residual`.
public func spatialSelfAttention(_ xn: UnsafePointer<Float>, batch: Int, channels c: Int, pixels p: Int,
                                 wq: UnsafePointer<Float>, bq: UnsafePointer<Float>,
                                 wk: UnsafePointer<Float>, bk: UnsafePointer<Float>,
                                 wv: UnsafePointer<Float>, bv: UnsafePointer<Float>,
                                 wo: UnsafePointer<Float>, bo: UnsafePointer<Float>,
                                 residual: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>,
                                 scratch: UnsafeMutablePointer<Float>) {
    let q = scratch, k = q + c * p, v = k + c * p, o = v + c * p, s = o + c * p
    let scale = 1 / Float(c).squareRoot()
    // Z[rows of W] = W·X + b, rows split over the workers (each chunk a dense row block of the output).
    func project(_ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                 _ z: UnsafeMutablePointer<Float>) {
        Parallel.forChunks(c, minChunk: 16) { _, rows in
            let zr = z + rows.lowerBound * p
            for r in rows { (zr + (r - rows.lowerBound) * p).update(repeating: b[r], count: p) }
            gemm(transB: false, m: rows.count, n: p, k: c, a: w + rows.lowerBound * c, lda: c, b: x, ldb: p,
                 beta: 1, c: zr, ldc: p)
        }
    }
    for n in 0..<batch {
        let x = xn + n * c * p, yn = y + n * c * p
        project(wq, bq, x, q)
        project(wk, bk, x, k)
        project(wv, bv, x, v)
        Parallel.forChunks(p, minChunk: 16) { _, rows in
            // S[rows, :] = scale · Q[:, rows]ᵀ · K
            gemm(transA: true, transB: false, m: rows.count, n: p, k: c, alpha: scale, a: q + rows.lowerBound, lda: p,
                 b: k, ldb: p, c: s + rows.lowerBound * p, ldc: p)
            softmaxRowsInPlace(s + rows.lowerBound * p, rows: rows.count, width: p)
        }
        Parallel.forChunks(c, minChunk: 16) { _, rows in
            // O[rows, :] = V[rows, :] · Sᵀ
            gemm(transB: true, m: rows.count, n: p, k: p, a: v + rows.lowerBound * p, lda: p, b: s, ldb: p,
                 c: o + rows.lowerBound * p, ldc: p)
        }
        project(wo, bo, o, q)  // Q's storage is free again
        if let residual {
            let r = residual + n * c * p
            for i in 0..<(c * p) { yn[i] = q[i] + r[i] }
        } else {
            yn.update(from: q, count: c * p)
        }
    }
}

/// Floats of scratch `spatialSelfAttention` needs: Q, K, V, O (`4·C·P`) and the scores (`P²`).
public func spatialAttentionScratchCount(channels: Int, pixels: Int) -> Int { 4 * channels * pixels + pixels * pixels }
