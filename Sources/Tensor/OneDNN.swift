import CBLAS
import CDNNL
import Foundation

/// Which library runs `gemm` and `linear`. Process-wide; set it before loading a model (weights are packed for
/// the backend at load, see `DiTWeights`). oneDNN is the default when its CPU engine can be created.
public enum GEMMBackend: String, CaseIterable, Sendable {
    /// OpenBLAS `cblas_sgemm`, single-threaded per call (FP32 only).
    case openblas
    /// oneDNN matmul primitives, single-threaded per call (FP32, and BF16 inputs with FP32 accumulation).
    case onednn

    nonisolated(unsafe) public static var current: GEMMBackend = DNNL.isAvailable ? .onednn : .openblas

    /// The backend named `text` (`openblas` or `onednn`), or an error naming `flag` and what was expected.
    public static func parse(_ text: String, flag: String = "--gemm") throws -> GEMMBackend {
        guard let b = GEMMBackend(rawValue: text.lowercased()) else {
            throw BackendError("\(flag): expected openblas or onednn, got '\(text)'")
        }
        if b == .onednn && !DNNL.isAvailable {
            throw BackendError("\(flag) onednn: oneDNN has no CPU engine on this machine (\(DNNL.unavailableReason ?? "unknown"))")
        }
        return b
    }
}

/// Arithmetic of the large GEMMs: FP32 throughout, or BF16 inputs (weights and activations) with FP32 accumulation
/// and FP32 outputs. Everything outside those GEMMs (norms, softmax, gating, routing) is FP32 in both.
public enum ComputePrecision: String, CaseIterable, Sendable {
    case fp32, bf16

    public static func parse(_ text: String, flag: String = "--precision") throws -> ComputePrecision {
        guard let p = ComputePrecision(rawValue: text.lowercased()) else {
            throw BackendError("\(flag): expected fp32 or bf16, got '\(text)'")
        }
        if p == .bf16 && GEMMBackend.current != .onednn {
            throw BackendError("\(flag) bf16: needs --gemm onednn (OpenBLAS has no BF16 GEMM here)")
        }
        return p
    }
}

public struct BackendError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// oneDNN (2.6, OpenMP runtime) behind Tensor's GEMM entry point.
///
/// Threading model: the engine's own `Parallel` workers each call single-threaded primitives; oneDNN never starts
/// an OpenMP team. Every thread that creates or runs a primitive first sets its OpenMP thread count to 1
/// (`omp_set_num_threads` is per thread), so primitives are built for one thread and no OpenMP worker exists to
/// spin (OMP_WAIT_POLICY is then irrelevant). Measured on DiT-MoE-S/2-8E2A shapes (docs/engine.md): two workers
/// each running half the rows single-threaded match or beat one 2-thread OpenMP primitive on every shape
/// (FP32 197–220 vs 167–217 GFLOP/s; BF16 358–455 vs 248–433), most at the small per-expert row counts, and the
/// engine keeps one scheduler for GEMMs, attention heads and experts.
///
/// Caching: one primitive per `MatmulKey` (exact shape, strides, transposes, data types, weight layout, alpha,
/// accumulation), created on first use under a lock and shared by all threads; primitives use a user scratchpad,
/// so concurrent execution of one primitive is safe. Each thread keeps its own memory objects per key (data
/// handles are set per call) and a growing scratch area; in the steady state a call allocates nothing.
public enum DNNL {
    /// The CPU engine, or nil with `unavailableReason`.
    static let engine: OpaquePointer? = {
        var e: dnnl_engine_t?
        guard dnnl_engine_create(&e, dnnl_cpu, 0) == dnnl_success else { return nil }
        return e
    }()

    public static var isAvailable: Bool { engine != nil }

    /// Primitives made so far (all shapes, all threads).
    public static var primitiveCount: Int { PrimitiveCache.shared.count }
    /// Per-thread oneDNN contexts built so far; a thread that exits hands its context to the next new thread.
    public static var threadContextCount: Int { ThreadContext.createdCount }
    /// Packed-weight GEMMs for which oneDNN picked its reference kernel (should be none: they are slow).
    public static var referenceKernelShapes: [String] { PrimitiveCache.shared.referencePacked }
    public static var unavailableReason: String? { engine == nil ? "dnnl_engine_create(cpu) failed" : nil }

    public static var version: String {
        guard let v = dnnl_version() else { return "?" }
        return "\(v.pointee.major).\(v.pointee.minor).\(v.pointee.patch)"
    }

    /// Implementation oneDNN picks for an FP32 or BF16 matmul of `m×k · k×n` with packed weights
    /// (e.g. `brg:avx512_core`, `brg:avx512_core_bf16`).
    public static func implementation(_ p: ComputePrecision, m: Int = 512, n: Int = 1536, k: Int = 384) -> String {
        let ctx = ThreadContext.current
        _ = ctx
        let dt = p == .bf16 ? dnnl_bf16 : dnnl_f32
        guard let w = try? PackedWeight.layout(rows: n, cols: k, dtype: dt) else { return "none" }
        let key = MatmulKey(m: m, n: n, k: k, lda: k, ldb: k, ldc: n, transA: false, transB: true, alpha: 1,
                            accumulate: false, srcType: dt.rawValue, packedWeights: true, ompThreads: 1)
        guard let entry = try? PrimitiveCache.shared.primitive(key, packedLayout: w) else { return "none" }
        return entry.implementation
    }

    // MARK: OpenMP

    /// `omp_set_num_threads` of the libgomp oneDNN is linked against, found at run time (Debian ships no
    /// libgomp.so development link).
    static let ompSetNumThreads: (@convention(c) (Int32) -> Void)? = {
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "omp_set_num_threads") else { return nil }
        return unsafeBitCast(sym, to: (@convention(c) (Int32) -> Void).self)
    }()
    static let ompGetMaxThreads: (@convention(c) () -> Int32)? = {
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "omp_get_max_threads") else { return nil }
        return unsafeBitCast(sym, to: (@convention(c) () -> Int32).self)
    }()

    /// OpenMP threads oneDNN would use for a primitive created on the calling thread now (1 after any oneDNN call
    /// from this thread).
    public static var openMPThreadsOfThisThread: Int { Int(ompGetMaxThreads?() ?? 1) }

    /// Runs `body` with this thread's oneDNN calls using an OpenMP team of `threads` (separate primitives, built
    /// for that team). Only for measuring the threading model the engine does not use (moebench-bench threading);
    /// after a team ran, its idle OpenMP workers spin for a while (libgomp's default wait policy).
    public static func withOpenMPThreads<R>(_ threads: Int, _ body: () throws -> R) rethrows -> R {
        let ctx = ThreadContext.current
        let saved = ctx.ompThreads
        ctx.ompThreads = threads
        ompSetNumThreads?(Int32(threads))
        defer { ctx.ompThreads = saved; ompSetNumThreads?(Int32(saved)) }
        return try body()
    }

    // MARK: Calls

    /// `c[m, n] = alpha · op(a) · op(b) + beta · c` in FP32 (see `gemm`); beta must be 0 or 1.
    @usableFromInline
    static func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                      a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                      beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let ctx = ThreadContext.current
        let key = MatmulKey(m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc, transA: transA, transB: transB,
                            alpha: alpha, accumulate: beta != 0, srcType: dnnl_f32.rawValue, packedWeights: false,
                            ompThreads: ctx.ompThreads)
        let e = ctx.entry(key, packedLayoutOf: nil)
        if e.shared.isReference {
            // oneDNN has only its (slow) reference kernel for this layout: OpenBLAS does it instead.
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
            return
        }
        e.run(src: UnsafeRawPointer(a), weights: UnsafeRawPointer(b), packed: nil, dst: c, scratch: ctx)
    }

    /// `y[rows, N] (+)= x[rows, K] · Wᵀ` with `W` packed (FP32 or BF16). BF16 weights take the rows of `x`
    /// rounded to BF16 (round to nearest even) into this thread's scratch first.
    @usableFromInline
    static func linear(_ x: UnsafePointer<Float>, rows: Int, ldx: Int, weight w: PackedWeight,
                       into y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool) {
        let ctx = ThreadContext.current
        let n = w.rows, k = w.cols
        // oneDNN 2.6's brgemm matmul takes dense source and destination only (a strided one falls back to its
        // reference implementation, hundreds of times slower): strided operands go through this thread's scratch.
        let src: UnsafeRawPointer
        if w.dtype == dnnl_bf16 {
            let buf = ctx.bf16Scratch(count: rows * k)
            roundToBF16(x, rows: rows, cols: k, ld: ldx, into: buf)
            src = UnsafeRawPointer(buf)
        } else if ldx != k {
            let buf = ctx.f32Scratch(.source, count: rows * k)
            for r in 0..<rows { (buf + r * k).update(from: x + r * ldx, count: k) }
            src = UnsafeRawPointer(buf)
        } else {
            src = UnsafeRawPointer(x)
        }
        let dst = ldy == n ? y : ctx.f32Scratch(.destination, count: rows * n)
        if ldy != n && accumulate { for r in 0..<rows { (dst + r * n).update(from: y + r * ldy, count: n) } }
        let key = MatmulKey(m: rows, n: n, k: k, lda: k, ldb: 0, ldc: n, transA: false, transB: true,
                            alpha: 1, accumulate: accumulate, srcType: w.dtype.rawValue, packedWeights: true,
                            ompThreads: ctx.ompThreads)
        let e = ctx.entry(key, packedLayoutOf: w)
        e.run(src: src, weights: nil, packed: w.memory, dst: dst, scratch: ctx)
        if ldy != n { for r in 0..<rows { (y + r * ldy).update(from: dst + r * n, count: n) } }
    }
}

extension DNNL {
    /// `y[rows, N] (+)= x[rows, K] · Wᵀ` with `x` already BF16 (dense, leading dimension K) and `W` packed BF16:
    /// the same GEMM as `linear` on the FP32 values `x` widens to, without the rounding pass.
    @usableFromInline
    static func linear(bf16 x: UnsafePointer<UInt16>, rows: Int, weight w: PackedWeight, into y: UnsafeMutablePointer<Float>,
                       accumulate: Bool) {
        precondition(w.dtype == dnnl_bf16, "linear(bf16:): the weight is not packed as BF16")
        let ctx = ThreadContext.current
        let key = MatmulKey(m: rows, n: w.rows, k: w.cols, lda: w.cols, ldb: 0, ldc: w.rows, transA: false, transB: true,
                            alpha: 1, accumulate: accumulate, srcType: w.dtype.rawValue, packedWeights: true,
                            ompThreads: ctx.ompThreads)
        let e = ctx.entry(key, packedLayoutOf: w)
        e.run(src: UnsafeRawPointer(x), weights: nil, packed: w.memory, dst: y, scratch: ctx)
    }
}

/// FP32 → BF16, round to nearest even (NaN stays NaN): `rows × cols` values read with leading dimension `ld`,
/// written contiguously.
@inlinable
public func roundToBF16(_ x: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int, into out: UnsafeMutablePointer<UInt16>) {
    for r in 0..<rows {
        let s = x + r * ld, d = out + r * cols
        for i in 0..<cols { d[i] = bf16Bits(s[i]) }
    }
}

/// The BF16 bit pattern nearest to `v` (ties to even); NaN maps to a quiet NaN.
@inlinable
public func bf16Bits(_ v: Float) -> UInt16 {
    let u = v.bitPattern
    if v.isNaN { return UInt16(truncatingIfNeeded: (u >> 16) | 0x40) }
    return UInt16(truncatingIfNeeded: (u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
}

/// A weight matrix in oneDNN's preferred blocked layout for matmul, made once at load from a `[out, in]` row-major
/// FP32 matrix (PyTorch layout), in FP32 or BF16. Owns its memory; shared read-only by every thread.
public final class PackedWeight: @unchecked Sendable {
    /// `[out, in]` of the original matrix: matmul N = rows, K = cols.
    public let rows: Int
    public let cols: Int
    let dtype: dnnl_data_type_t
    let memory: OpaquePointer
    public let byteCount: Int
    public var precision: ComputePrecision { dtype == dnnl_bf16 ? .bf16 : .fp32 }

    /// The packed layout (the weights memory descriptor a matmul with `format_tag_any` weights picks; it does not
    /// depend on M, checked on oneDNN 2.6).
    static func layout(rows: Int, cols: Int, dtype: dnnl_data_type_t) throws -> dnnl_memory_desc_t {
        let key = LayoutKey(rows: rows, cols: cols, dtype: dtype.rawValue)
        return try PrimitiveCache.shared.layout(key) {
            var a = dnnl_memory_desc_t(), b = dnnl_memory_desc_t(), c = dnnl_memory_desc_t()
            var ad: [Int64] = [256, Int64(cols)], bd: [Int64] = [Int64(cols), Int64(rows)], cd: [Int64] = [256, Int64(rows)]
            var as_: [Int64] = [Int64(cols), 1], cs: [Int64] = [Int64(rows), 1]
            try check(dnnl_memory_desc_init_by_strides(&a, 2, &ad, dtype, &as_), "source descriptor")
            try check(dnnl_memory_desc_init_by_tag(&b, 2, &bd, dtype, dnnl_format_tag_any), "weights descriptor")
            try check(dnnl_memory_desc_init_by_strides(&c, 2, &cd, dnnl_f32, &cs), "destination descriptor")
            var desc = dnnl_matmul_desc_t()
            try check(dnnl_matmul_desc_init(&desc, &a, &b, nil, &c), "matmul descriptor")
            var pd: dnnl_primitive_desc_t?
            try check(dnnl_primitive_desc_create(&pd, &desc, nil, DNNL.engine, nil), "matmul \(rows)×\(cols) primitive descriptor")
            defer { dnnl_primitive_desc_destroy(pd) }
            return dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0).pointee
        }
    }

    /// Packs `w` (`[rows, cols]` row-major FP32) into `precision`'s blocked layout; BF16 rounds to nearest even.
    public init(float32 w: UnsafePointer<Float>, rows: Int, cols: Int, precision: ComputePrecision) throws {
        guard let engine = DNNL.engine else { throw BackendError("oneDNN: no CPU engine") }
        _ = ThreadContext.current  // this thread: one OpenMP thread
        self.rows = rows; self.cols = cols
        dtype = precision == .bf16 ? dnnl_bf16 : dnnl_f32
        var dst = try Self.layout(rows: rows, cols: cols, dtype: dtype)
        byteCount = dnnl_memory_desc_get_size(&dst)
        var m: dnnl_memory_t?
        try check(dnnl_memory_create(&m, &dst, engine, UnsafeMutableRawPointer(bitPattern: -1)), "packed weight memory")
        memory = m!
        // Source: the [out, in] matrix seen as K×N with strides (1, K).
        var src = dnnl_memory_desc_t()
        var sd: [Int64] = [Int64(cols), Int64(rows)], ss: [Int64] = [1, Int64(cols)]
        try check(dnnl_memory_desc_init_by_strides(&src, 2, &sd, dnnl_f32, &ss), "weight source descriptor")
        var srcMem: dnnl_memory_t?
        try check(dnnl_memory_create(&srcMem, &src, engine, UnsafeMutableRawPointer(mutating: w)), "weight source memory")
        defer { dnnl_memory_destroy(srcMem) }
        var rpd: dnnl_primitive_desc_t?
        try check(dnnl_reorder_primitive_desc_create(&rpd, &src, engine, &dst, engine, nil), "weight reorder")
        defer { dnnl_primitive_desc_destroy(rpd) }
        var reorder: dnnl_primitive_t?
        try check(dnnl_primitive_create(&reorder, rpd), "weight reorder primitive")
        defer { dnnl_primitive_destroy(reorder) }
        var args = [dnnl_exec_arg_t(arg: MOE_DNNL_ARG_FROM, memory: srcMem), dnnl_exec_arg_t(arg: MOE_DNNL_ARG_TO, memory: memory)]
        let stream = ThreadContext.current.stream
        try check(dnnl_primitive_execute(reorder, stream, 2, &args), "weight reorder")
        try check(dnnl_stream_wait(stream), "weight reorder")
    }

    deinit { dnnl_memory_destroy(memory) }
}

@usableFromInline
struct MatmulKey: Hashable {
    var m, n, k, lda, ldb, ldc: Int
    var transA, transB: Bool
    var alpha: Float
    var accumulate: Bool
    /// `dnnl_data_type_t` raw value of source and weights (destination is always FP32).
    var srcType: UInt32
    var packedWeights: Bool
    /// OpenMP team the primitive is built for: 1 in the engine (see `DNNL`).
    var ompThreads: Int
}

struct LayoutKey: Hashable { var rows, cols: Int; var dtype: UInt32 }

@inline(__always)
func check(_ s: dnnl_status_t, _ what: @autoclosure () -> String) throws {
    if s != dnnl_success { throw BackendError("oneDNN: \(what()) failed (status \(s.rawValue))") }
}

/// Shared primitives, one per key. Thread-safe: lookups and creation under one lock (only on a thread's first use
/// of a key; afterwards the thread's own `ThreadContext` answers).
final class PrimitiveCache: @unchecked Sendable {
    static let shared = PrimitiveCache()
    private let lock = NSLock()
    private var primitives: [MatmulKey: SharedPrimitive] = [:]
    private var layouts: [LayoutKey: dnnl_memory_desc_t] = [:]

    func layout(_ key: LayoutKey, make: () throws -> dnnl_memory_desc_t) throws -> dnnl_memory_desc_t {
        lock.lock(); defer { lock.unlock() }
        if let l = layouts[key] { return l }
        let l = try make()
        layouts[key] = l
        return l
    }

    var count: Int { lock.lock(); defer { lock.unlock() }; return primitives.count }

    /// Shapes (as `M×K·K×N dtype`) whose packed-weight primitive is oneDNN's reference kernel.
    var referencePacked: [String] {
        lock.lock(); defer { lock.unlock() }
        return primitives.filter { $0.key.packedWeights && $0.value.isReference }.map { k, _ in
            "\(k.m)×\(k.k)·\(k.k)×\(k.n) \(k.srcType == dnnl_bf16.rawValue ? "bf16" : "f32")"
        }.sorted()
    }

    func primitive(_ key: MatmulKey, packedLayout: dnnl_memory_desc_t?) throws -> SharedPrimitive {
        lock.lock(); defer { lock.unlock() }
        if let p = primitives[key] { return p }
        let p = try SharedPrimitive(key, packedLayout: packedLayout)
        primitives[key] = p
        return p
    }
}

/// One matmul primitive and the memory descriptors of its arguments.
final class SharedPrimitive: @unchecked Sendable {
    let primitive: dnnl_primitive_t
    var src = dnnl_memory_desc_t(), weights = dnnl_memory_desc_t(), dst = dnnl_memory_desc_t()
    var scratchpad = dnnl_memory_desc_t()
    let scratchBytes: Int
    let implementation: String
    /// True when oneDNN picked its reference kernel (`ref:…`).
    let isReference: Bool

    init(_ key: MatmulKey, packedLayout: dnnl_memory_desc_t?) throws {
        let dt = dnnl_data_type_t(rawValue: key.srcType)
        var ad: [Int64] = [Int64(key.m), Int64(key.k)]
        var as_: [Int64] = key.transA ? [1, Int64(key.lda)] : [Int64(key.lda), 1]
        try check(dnnl_memory_desc_init_by_strides(&src, 2, &ad, dt, &as_), "matmul source descriptor")
        if let packedLayout {
            weights = packedLayout
        } else {
            var bd: [Int64] = [Int64(key.k), Int64(key.n)]
            var bs: [Int64] = key.transB ? [1, Int64(key.ldb)] : [Int64(key.ldb), 1]
            try check(dnnl_memory_desc_init_by_strides(&weights, 2, &bd, dt, &bs), "matmul weights descriptor")
        }
        var cd: [Int64] = [Int64(key.m), Int64(key.n)], cs: [Int64] = [Int64(key.ldc), 1]
        try check(dnnl_memory_desc_init_by_strides(&dst, 2, &cd, dnnl_f32, &cs), "matmul destination descriptor")
        var desc = dnnl_matmul_desc_t()
        try check(dnnl_matmul_desc_init(&desc, &src, &weights, nil, &dst), "matmul descriptor")
        var attr: dnnl_primitive_attr_t?
        try check(dnnl_primitive_attr_create(&attr), "primitive attributes")
        defer { dnnl_primitive_attr_destroy(attr) }
        try check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "user scratchpad")
        if key.alpha != 1 {
            var alpha = key.alpha
            try check(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha), "output scale")
        }
        if key.accumulate {
            var ops: dnnl_post_ops_t?
            try check(dnnl_post_ops_create(&ops), "post-ops")
            defer { dnnl_post_ops_destroy(ops) }
            try check(dnnl_post_ops_append_sum(ops, 1), "sum post-op")
            try check(dnnl_primitive_attr_set_post_ops(attr, ops), "post-ops")
        }
        var pd: dnnl_primitive_desc_t?
        try check(dnnl_primitive_desc_create(&pd, &desc, attr, DNNL.engine, nil),
                  "matmul \(key.m)×\(key.k)·\(key.k)×\(key.n) (\(dt == dnnl_bf16 ? "bf16" : "f32")) primitive descriptor")
        defer { dnnl_primitive_desc_destroy(pd) }
        scratchpad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0).pointee
        scratchBytes = dnnl_memory_desc_get_size(&scratchpad)
        var info: UnsafePointer<CChar>?
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &info)
        implementation = info.map { String(cString: $0) } ?? "?"
        isReference = implementation.hasPrefix("ref")
        var p: dnnl_primitive_t?
        try check(dnnl_primitive_create(&p, pd), "matmul primitive")
        primitive = p!
    }

    deinit { dnnl_primitive_destroy(primitive) }
}

/// One thread's memory objects for one key, and the argument list pointing at them.
@usableFromInline
final class ThreadEntry {
    let shared: SharedPrimitive
    let src: dnnl_memory_t
    let weights: dnnl_memory_t?  // nil: the packed weight's own memory object is passed
    let dst: dnnl_memory_t
    let scratch: dnnl_memory_t?
    let args: UnsafeMutablePointer<dnnl_exec_arg_t>
    let argCount: Int32

    init(_ shared: SharedPrimitive, packed: Bool) throws {
        self.shared = shared
        let engine = DNNL.engine
        var m: dnnl_memory_t?
        try check(dnnl_memory_create(&m, &shared.src, engine, nil), "source memory"); src = m!
        try check(dnnl_memory_create(&m, &shared.dst, engine, nil), "destination memory"); dst = m!
        if !packed {
            try check(dnnl_memory_create(&m, &shared.weights, engine, nil), "weights memory"); weights = m!
        } else {
            weights = nil
        }
        if shared.scratchBytes > 0 {
            try check(dnnl_memory_create(&m, &shared.scratchpad, engine, nil), "scratchpad memory"); scratch = m!
        } else {
            scratch = nil
        }
        args = .allocate(capacity: 4)
        args[0] = dnnl_exec_arg_t(arg: MOE_DNNL_ARG_SRC, memory: src)
        args[1] = dnnl_exec_arg_t(arg: MOE_DNNL_ARG_WEIGHTS, memory: weights)
        args[2] = dnnl_exec_arg_t(arg: MOE_DNNL_ARG_DST, memory: dst)
        if let scratch { args[3] = dnnl_exec_arg_t(arg: MOE_DNNL_ARG_SCRATCHPAD, memory: scratch) }
        argCount = scratch == nil ? 3 : 4
    }

    /// Runs the primitive on these pointers: plain weights at `weights`, or the memory object of a packed weight
    /// (whose layout is the one this entry's primitive was made for: it depends only on N, K and the data type).
    @usableFromInline
    func run(src a: UnsafeRawPointer, weights b: UnsafeRawPointer?, packed: dnnl_memory_t?,
             dst c: UnsafeMutablePointer<Float>, scratch ctx: ThreadContext) {
        dnnl_memory_set_data_handle(src, UnsafeMutableRawPointer(mutating: a))
        dnnl_memory_set_data_handle(dst, UnsafeMutableRawPointer(c))
        if let weights, let b { dnnl_memory_set_data_handle(weights, UnsafeMutableRawPointer(mutating: b)) }
        if let packed { args[1].memory = packed }
        if let scratch { dnnl_memory_set_data_handle(scratch, ctx.scratchpad(bytes: shared.scratchBytes)) }
        let s = dnnl_primitive_execute(shared.primitive, ctx.stream, argCount, args)
        precondition(s == dnnl_success, "oneDNN matmul failed (status \(s.rawValue))")
        dnnl_stream_wait(ctx.stream)
    }

    deinit {
        dnnl_memory_destroy(src); dnnl_memory_destroy(dst)
        if let weights { dnnl_memory_destroy(weights) }
        if let scratch { dnnl_memory_destroy(scratch) }
        args.deallocate()
    }
}

/// Per-thread state: an OpenMP thread count of 1, a stream, memory objects per key, and scratch areas that only
/// grow.
@usableFromInline
final class ThreadContext {
    let stream: dnnl_stream_t
    /// OpenMP team size of this thread's oneDNN calls (1 except inside `DNNL.withOpenMPThreads`).
    var ompThreads = 1
    private var entries: [MatmulKey: ThreadEntry] = [:]
    private var scratchBase: UnsafeMutableRawPointer?
    private var scratchCapacity = 0
    private var bf16Base: UnsafeMutablePointer<UInt16>?
    private var bf16Capacity = 0

    private static let tls: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { p in recycle(Unmanaged<ThreadContext>.fromOpaque(p!).takeRetainedValue()) }
        return k
    }()

    // Contexts of exited threads, handed to the next new thread (at most `poolLimit` kept). A server that gives each
    // connection its own thread would otherwise build and free a stream, memory objects and scratch areas
    // (hundreds of KiB) per connection, and its resident memory would wander with the connection count.
    private static let poolLock = NSLock()
    nonisolated(unsafe) private static var pool: [ThreadContext] = []
    static let poolLimit = 8
    nonisolated(unsafe) private static var created = 0

    /// Contexts built so far in this process (reused ones are not counted again).
    static var createdCount: Int { poolLock.lock(); defer { poolLock.unlock() }; return created }

    private static func recycle(_ c: ThreadContext) {
        poolLock.lock(); defer { poolLock.unlock() }
        if pool.count < poolLimit { pool.append(c) }
    }

    @usableFromInline
    static var current: ThreadContext {
        if let p = pthread_getspecific(tls) { return Unmanaged<ThreadContext>.fromOpaque(p).takeUnretainedValue() }
        poolLock.lock()
        let reused = pool.popLast()
        if reused == nil { created += 1 }
        poolLock.unlock()
        let c: ThreadContext
        if let reused {
            DNNL.ompSetNumThreads?(1)  // per thread: this new thread's oneDNN calls use one OpenMP thread too
            reused.ompThreads = 1
            c = reused
        } else {
            c = ThreadContext()
        }
        pthread_setspecific(tls, Unmanaged.passRetained(c).toOpaque())
        return c
    }

    private init() {
        DNNL.ompSetNumThreads?(1)
        var s: dnnl_stream_t?
        let status = dnnl_stream_create(&s, DNNL.engine, dnnl_stream_default_flags.rawValue)
        precondition(status == dnnl_success, "oneDNN: cannot create a stream (status \(status.rawValue))")
        stream = s!
    }

    deinit {
        entries.removeAll()
        dnnl_stream_destroy(stream)
        scratchBase?.deallocate()
        bf16Base?.deallocate()
        for p in f32Base { p?.deallocate() }
    }

    /// The thread's entry for `key`, created on first use (`packedLayoutOf`: a packed weight of the key's N, K and
    /// data type, when the key says the weights are packed).
    @usableFromInline
    func entry(_ key: MatmulKey, packedLayoutOf packed: PackedWeight?) -> ThreadEntry {
        if let e = entries[key] { return e }
        do {
            let layout = try packed.map { try PackedWeight.layout(rows: $0.rows, cols: $0.cols, dtype: $0.dtype) }
            let shared = try PrimitiveCache.shared.primitive(key, packedLayout: layout)
            let e = try ThreadEntry(shared, packed: packed != nil)
            entries[key] = e
            return e
        } catch {
            preconditionFailure("\(error)")
        }
    }

    func scratchpad(bytes: Int) -> UnsafeMutableRawPointer {
        if bytes > scratchCapacity {
            scratchBase?.deallocate()
            scratchCapacity = max(bytes, 2 * scratchCapacity)
            scratchBase = .allocate(byteCount: scratchCapacity, alignment: 64)
        }
        return scratchBase!
    }

    enum Operand: Int { case source = 0, destination = 1 }
    private var f32Base: [UnsafeMutablePointer<Float>?] = [nil, nil]
    private var f32Capacity = [0, 0]

    /// Dense FP32 copies of strided operands (one area per operand, grows only).
    func f32Scratch(_ o: Operand, count: Int) -> UnsafeMutablePointer<Float> {
        let i = o.rawValue
        if count > f32Capacity[i] {
            f32Base[i]?.deallocate()
            f32Capacity[i] = max(count, 2 * f32Capacity[i])
            f32Base[i] = UnsafeMutableRawPointer.allocate(byteCount: f32Capacity[i] * 4, alignment: 64)
                .bindMemory(to: Float.self, capacity: f32Capacity[i])
        }
        return f32Base[i]!
    }

    func bf16Scratch(count: Int) -> UnsafeMutablePointer<UInt16> {
        if count > bf16Capacity {
            bf16Base?.deallocate()
            bf16Capacity = max(count, 2 * bf16Capacity)
            bf16Base = UnsafeMutableRawPointer.allocate(byteCount: bf16Capacity * 2, alignment: 64)
                .bindMemory(to: UInt16.self, capacity: bf16Capacity)
        }
        return bf16Base!
    }
}
