import CBLAS

/// The one GEMM entry point of moebench: row-major single precision, run by `GEMMBackend.current` — oneDNN matmul
/// (beta 0 or 1; a cached primitive per shape, see `DNNL`) or OpenBLAS `cblas_sgemm` (any beta).
///
/// `c[m, n] = alpha · op(a)[m, k] · op(b)[k, n] + beta · c[m, n]`, all row-major with the given leading
/// dimensions. A PyTorch `nn.Linear` weight stored as `[out, in]` is used as `b` with `transB = true`, as stored,
/// never copied or transposed in memory (see `linear`).
@inlinable
public func gemm(transA: Bool = false, transB: Bool, m: Int, n: Int, k: Int,
                 alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                 b: UnsafePointer<Float>, ldb: Int,
                 beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if m == 0 || n == 0 { return }
    if GEMMBackend.current == .onednn && k > 0 && (beta == 0 || beta == 1) {
        DNNL.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                   beta: beta, c: c, ldc: ldc)
        return
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
}

/// `y[rows, out] (+)= x[rows, in] · wᵀ + bias`, with `w` a `[out, in]` row-major weight as stored.
///
/// - `ldx`/`ldy` default to `inFeatures`/`outFeatures`; pass larger strides to read or write column blocks.
/// - `accumulate`: add into `y` instead of overwriting it.
@inlinable
public func linear(_ x: UnsafePointer<Float>, rows: Int, inFeatures: Int,
                   weight w: UnsafePointer<Float>, outFeatures: Int, bias: UnsafePointer<Float>?,
                   into y: UnsafeMutablePointer<Float>, ldx: Int? = nil, ldy: Int? = nil, accumulate: Bool = false) {
    let ldy = ldy ?? outFeatures
    var beta: Float = accumulate ? 1 : 0
    if let bias, !accumulate {
        for r in 0..<rows { (y + r * ldy).update(from: bias, count: outFeatures) }
        beta = 1
    }
    gemm(transB: true, m: rows, n: outFeatures, k: inFeatures, a: x, lda: ldx ?? inFeatures,
         b: w, ldb: inFeatures, beta: beta, c: y, ldc: ldy)
    if let bias, accumulate {
        for r in 0..<rows { addInPlace(y + r * ldy, bias, count: outFeatures) }
    }
}

/// OpenBLAS's own thread count. moebench runs BLAS single-threaded and parallelises in the application (see
/// `Parallel`): OpenBLAS workers spin ~100 ms after each multi-threaded call and steal the other core.
public enum BLASThreads {
    public static func set(_ n: Int) { openblas_set_num_threads(Int32(n)) }
    public static var current: Int { Int(openblas_get_num_threads()) }
    public static var coreName: String { String(cString: openblas_get_corename()) }
    public static var config: String { String(cString: openblas_get_config()) }
}
