import Tensor

/// Backward of `y[rows, out] = x[rows, in]·wᵀ + b` (w a PyTorch `[out, in]` weight as stored), parallel over the
/// workers of `Parallel`:
/// - `dW[out, in] += dyᵀ·x`, split by output rows (each worker owns a block of dW);
/// - `dB[out] += Σ_rows dy`;
/// - `dx[rows, in] (+)= dy·w` when `dx` is given, split by rows.
/// `ldx`/`ldDy` are the row strides of x and dy (default `inFeatures`/`outFeatures`).
func linearBackward(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, rows: Int, inFeatures: Int, outFeatures: Int,
                    weight w: UnsafePointer<Float>, dWeight: UnsafeMutablePointer<Float>,
                    dBias: UnsafeMutablePointer<Float>?, dx: UnsafeMutablePointer<Float>?, accumulateDx: Bool = false,
                    ldx: Int? = nil, ldDy: Int? = nil) {
    if rows == 0 { return }
    let ldx = ldx ?? inFeatures, ldDy = ldDy ?? outFeatures
    Parallel.forChunks(outFeatures, minChunk: 16) { _, o in
        gemm(transA: true, transB: false, m: o.count, n: inFeatures, k: rows, a: dy + o.lowerBound, lda: ldDy,
             b: x, ldb: ldx, beta: 1, c: dWeight + o.lowerBound * inFeatures, ldc: inFeatures)
        if let dBias {
            for r in 0..<rows { addInPlace(dBias + o.lowerBound, dy + r * ldDy + o.lowerBound, count: o.count) }
        }
    }
    guard let dx else { return }
    Parallel.forChunks(rows, minChunk: 16) { _, r in
        gemm(transB: false, m: r.count, n: inFeatures, k: outFeatures, a: dy + r.lowerBound * ldDy, lda: ldDy,
             b: w, ldb: inFeatures, beta: accumulateDx ? 1 : 0, c: dx + r.lowerBound * inFeatures, ldc: inFeatures)
    }
}

/// The same backward on the calling thread only (for work already split over workers, e.g. one expert each).
@inline(__always)
func linearBackwardSerial(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, rows: Int, inFeatures: Int,
                          outFeatures: Int, weight w: UnsafePointer<Float>, dWeight: UnsafeMutablePointer<Float>,
                          dx: UnsafeMutablePointer<Float>?, ldx: Int? = nil, ldDy: Int? = nil) {
    if rows == 0 { return }
    let ldx = ldx ?? inFeatures, ldDy = ldDy ?? outFeatures
    gemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: rows, a: dy, lda: ldDy, b: x, ldb: ldx,
         beta: 1, c: dWeight, ldc: inFeatures)
    if let dx {
        gemm(transB: false, m: rows, n: inFeatures, k: outFeatures, a: dy, lda: ldDy, b: w, ldb: inFeatures,
             c: dx, ldc: inFeatures)
    }
}
