import Dispatch

/// Application-level parallelism. BLAS runs single-threaded (see `BLASThreads`); the engine splits independent
/// work — row blocks of a GEMM, (sample, head) pairs of attention, groups of experts — over `Parallel.threads`
/// workers. The closure receives the worker index and must touch only that worker's rows and scratch.
public enum Parallel {
    /// Number of workers; 1 runs everything on the calling thread.
    nonisolated(unsafe) public static var threads: Int = 1

    /// Calls `body(worker)` for `worker` in `0..<n` concurrently (n ≤ threads), returning when all are done.
    @inlinable
    public static func run(_ n: Int, _ body: (Int) -> Void) {
        if n <= 1 { body(0); return }
        DispatchQueue.concurrentPerform(iterations: n, execute: body)
    }

    /// Splits `0..<count` into at most `threads` contiguous chunks (none smaller than `minChunk`) and calls
    /// `body(worker, range)` for each, concurrently.
    @inlinable
    public static func forChunks(_ count: Int, minChunk: Int = 1, _ body: (Int, Range<Int>) -> Void) {
        let workers = max(1, min(threads, count / max(minChunk, 1)))
        if workers == 1 { body(0, 0..<count); return }
        run(workers) { w in
            let lo = count * w / workers, hi = count * (w + 1) / workers
            body(w, lo..<hi)
        }
    }
}

/// `linear` with its rows split over the workers: `y[rows, out] = x · wᵀ + bias`. For few rows (adaLN on a
/// batch of B conditioning vectors) the output features are split instead, so both cores still work.
@inlinable
public func parallelLinear(_ x: UnsafePointer<Float>, rows: Int, inFeatures: Int,
                           weight w: UnsafePointer<Float>, outFeatures: Int, bias: UnsafePointer<Float>?,
                           into y: UnsafeMutablePointer<Float>, ldx: Int? = nil, ldy: Int? = nil,
                           accumulate: Bool = false) {
    let ldx = ldx ?? inFeatures, ldy = ldy ?? outFeatures
    if rows >= 16 * Parallel.threads {
        Parallel.forChunks(rows, minChunk: 16) { _, r in
            linear(x + r.lowerBound * ldx, rows: r.count, inFeatures: inFeatures, weight: w,
                   outFeatures: outFeatures, bias: bias, into: y + r.lowerBound * ldy, ldx: ldx, ldy: ldy,
                   accumulate: accumulate)
        }
    } else {
        Parallel.forChunks(outFeatures, minChunk: 64) { _, c in
            linear(x, rows: rows, inFeatures: inFeatures, weight: w + c.lowerBound * inFeatures,
                   outFeatures: c.count, bias: bias.map { $0 + c.lowerBound }, into: y + c.lowerBound,
                   ldx: ldx, ldy: ldy, accumulate: accumulate)
        }
    }
}
