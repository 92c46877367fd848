import Foundation
import Tensor

/// Where a model's parameters come from.
public enum WeightSource: Equatable, Sendable {
    /// A safetensors file with the upstream state-dict key names (F32, F16 or BF16 storage).
    case safetensors(path: String)
    /// Seeded random initialisation (for configs without released weights and for benchmarks). Each tensor's
    /// values depend only on (seed, key), so any process can materialise any subset identically.
    case random(seed: UInt64)
}

/// Which parameters a process needs: the whole model, or only some routed experts (a cluster worker).
public enum WeightScope: Equatable, Sendable {
    case full
    case experts(Set<Int>)

    func includes(_ spec: TensorSpec) -> Bool {
        switch self {
        case .full: return true
        case let .experts(set): return spec.expert.map { set.contains($0.expert) } ?? false
        }
    }
}

/// Memory for routed-expert matrices that `DiTWeights` copies out of their source (see `init(…materialize:)`),
/// e.g. `numa_alloc_onnode`/`numa_free` for a worker bound to a NUMA node. `allocate` returns nil on failure;
/// `deallocate` gets back the pointer and byte count `allocate` was asked for.
public struct WeightAllocator {
    public var allocate: (_ bytes: Int) -> UnsafeMutableRawPointer?
    public var deallocate: (_ pointer: UnsafeMutableRawPointer, _ bytes: Int) -> Void

    public init(allocate: @escaping (_ bytes: Int) -> UnsafeMutableRawPointer?,
                deallocate: @escaping (_ pointer: UnsafeMutableRawPointer, _ bytes: Int) -> Void) {
        self.allocate = allocate; self.deallocate = deallocate
    }
}

/// The parameter tensors of one model, validated against its config's manifest. Matrices stay in their stored
/// dtype (F16/BF16 are widened per GEMM); vectors (biases, norms, tables) are held as Float32.
public final class DiTWeights: @unchecked Sendable {
    public let config: DiTConfig
    public let source: WeightSource
    public let scope: WeightScope
    /// A short identity of (config, weights), equal across processes that load the same model.
    public let fingerprint: String

    private let file: SafetensorsFile?
    private var matrices: [String: WeightMatrix] = [:]
    private var vectors: [String: UnsafePointer<Float>] = [:]
    private var owned: [UnsafeMutableRawPointer] = []
    /// Copies made by `materialize`, with the allocator that made them.
    private var placed: [(pointer: UnsafeMutableRawPointer, bytes: Int)] = []
    private let allocator: WeightAllocator?
    /// The weights whose stored tensors this instance shares (`init(sharing:precision:)`).
    private var keepAlive: DiTWeights?
    /// Largest matrix stored as F16/BF16 (elements), i.e. the widening scratch a GEMM needs; 0 if all F32.
    public private(set) var maxHalfMatrix = 0
    public private(set) var storageBytes = 0
    /// Arithmetic of the large GEMMs (see `ComputePrecision`).
    public let precision: ComputePrecision
    /// What loading did to the GEMM matrices for the compute backend, in words (nil: used as stored).
    public private(set) var packingSummary: String?

    /// - materialize: when given, every loaded routed expert's fused gate/up and down matrices are copied into
    ///   memory from this allocator after loading (in the stored dtype), and the buffers they came from are freed
    ///   when nothing else uses them. Without it, checkpoint matrices are views of the file's page cache (placed
    ///   wherever the kernel put them) and random ones live where the init threads first touched them.
    /// - precision: `.bf16` packs the GEMM matrices as BF16 (converted from F32/F16/BF16 storage) and needs the
    ///   oneDNN backend. With `.fp32` and the oneDNN backend they are packed as FP32; with OpenBLAS they stay as
    ///   stored. The packed layout is oneDNN's blocked matmul layout (see `packGEMMMatrices`).
    public init(config: DiTConfig, source: WeightSource, scope: WeightScope = .full,
                materialize: WeightAllocator? = nil, precision: ComputePrecision = .fp32) throws {
        self.config = config
        self.precision = precision
        self.source = source
        self.scope = scope
        allocator = materialize
        let specs = config.tensorSpecs
        switch source {
        case let .safetensors(path):
            let f = try SafetensorsFile(path: path)
            file = f
            fingerprint = DiTWeights.fingerprint(config: config, file: f)
            try validate(specs: specs, file: f)
            for spec in specs where scope.includes(spec) { try adopt(spec, from: f) }
        case let .random(seed):
            file = nil
            fingerprint = DiTWeights.fingerprint(config: config, seed: seed)
            let wanted = specs.filter { scope.includes($0) }
            // One allocation per tensor, except that each SwiGLU's gate_proj and up_proj (adjacent in the manifest)
            // share one, so the fused [gate; up] matrix is a view rather than a second copy (XL would need 26 GB).
            var buffers: [UnsafeMutablePointer<Float>] = []
            for (i, spec) in wanted.enumerated() {
                let n = spec.shape.reduce(1, *)
                if spec.key.hasSuffix("up_proj.weight"), i > 0,
                   wanted[i - 1].key == spec.key.replacingOccurrences(of: "up_proj.weight", with: "gate_proj.weight") {
                    buffers.append(buffers[i - 1] + wanted[i - 1].shape.reduce(1, *))
                    continue
                }
                var count = max(n, 1)
                if spec.key.hasSuffix("gate_proj.weight"), i + 1 < wanted.count,
                   wanted[i + 1].key == spec.key.replacingOccurrences(of: "gate_proj.weight", with: "up_proj.weight") {
                    count = n + wanted[i + 1].shape.reduce(1, *)
                }
                let p = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64)
                owned.append(p)
                buffers.append(p.bindMemory(to: Float.self, capacity: count))
            }
            // Fill in parallel: random init of B/2 is 800M values.
            let order = Array(wanted.indices).sorted { wanted[$0].shape.reduce(1, *) > wanted[$1].shape.reduce(1, *) }
            let workers = max(1, ProcessInfo.processInfo.activeProcessorCount)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                var i = w
                while i < order.count {
                    let s = wanted[order[i]]
                    RandomInit.fill(buffers[order[i]], spec: s, config: config, seed: seed)
                    i += workers
                }
            }
            for (spec, buffer) in zip(wanted, buffers) { register(spec, f32: UnsafeRawPointer(buffer)) }
        }
        if config.isMoE { try fuseExpertGateUp() }
        if config.isMoE, let a = materialize { try materializeExperts(with: a) }
        if GEMMBackend.current == .onednn {
            try packGEMMMatrices()
        } else if precision == .bf16 {
            throw DiTError.badConfig(source: "precision", field: "--precision", expected: "fp32 with --gemm openblas (BF16 needs --gemm onednn)", got: "bf16")
        }
    }

    /// Keys of the matrices that feed large GEMMs (rows = tokens or routed rows): patch embedding, attention
    /// projections, dense MLP, routed and shared experts (fused gate/up and down), final linear. adaLN, timestep
    /// MLP and the MoE gate (few rows, or routing decided in FP32) stay as stored.
    func isLargeGEMMMatrix(_ key: String) -> Bool {
        if key == "x_embedder.proj.weight" || key == "final_layer.linear.weight" { return true }
        for suffix in ["attn.qkv.weight", "attn.Wqkv.weight", "attn.proj.weight", "attn.out_proj.weight",
                       "mlp.fc1.weight", "mlp.fc2.weight", "gate_up.fused", "down_proj.weight"] where key.hasSuffix(suffix) {
            return true
        }
        return false
    }

    /// Packs every large-GEMM matrix once into oneDNN's blocked layout in `precision` (F16/BF16 storage is widened
    /// to F32 first; BF16 rounds to nearest even). The stored matrices stay where they are.
    private func packGEMMMatrices() throws {
        let keys = matrices.keys.filter(isLargeGEMMMatrix).sorted()
        // The stored matrices stay (other code reads them), so FP32 packing doubles their memory. Above half the
        // machine's RAM (DiT-MoE-XL and larger) FP32 runs on the stored layout instead: oneDNN then repacks each
        // weight block per call, measured about 5% slower on DiT-MoE-S shapes (20% at 64 rows).
        let fp32Bytes = keys.reduce(0) { $0 + matrices[$1]!.count * 4 }
        if precision == .fp32 && fp32Bytes > Int(ProcessInfo.processInfo.physicalMemory / 2) {
            packingSummary = String(format: "%d GEMM matrices used as stored (FP32 packed copies would take %.1f GB, over half of the %.1f GB of RAM)",
                                    keys.count, Double(fp32Bytes) / 1e9, Double(ProcessInfo.processInfo.physicalMemory) / 1e9)
            return
        }
        var bytes = 0, stored: Set<String> = []
        var scratch: UnsafeMutablePointer<Float>? = nil, scratchCount = 0
        defer { scratch?.deallocate() }
        for key in keys {
            var m = matrices[key]!
            if m.dtype != .f32 && m.count > scratchCount {
                scratch?.deallocate(); scratch = .allocate(capacity: m.count); scratchCount = m.count
            }
            let f32 = m.float32(scratch: scratch)
            do {
                m.packed = try PackedWeight(float32: f32, rows: m.rows, cols: m.cols, precision: precision)
            } catch let e as BackendError {
                throw DiTError.badConfig(source: "precision", field: "--precision \(precision.rawValue)",
                                         expected: "a oneDNN matmul for \(key) [\(m.rows), \(m.cols)]", got: e.description)
            }
            bytes += m.packed!.byteCount
            stored.insert(m.dtype.rawValue)
            matrices[key] = m
        }
        guard !keys.isEmpty else { return }
        // Widening scratch is needed only for half-precision matrices that were not packed.
        maxHalfMatrix = matrices.values.filter { $0.dtype != .f32 && $0.packed == nil }.map(\.count).max() ?? 0
        let from = stored.sorted().joined(separator: "/")
        packingSummary = "\(keys.count) GEMM matrices " + (from == precision.dtypeName ? "packed as \(from)" : "converted \(from) → \(precision.dtypeName)")
            + String(format: " at load (oneDNN blocked layout, %.1f MB)", Double(bytes) / 1e6)
    }

    /// The same stored tensors as `other` (shared, not copied; `other` is kept alive), with the large GEMM matrices
    /// packed for `precision` and the current backend. For comparing precisions or backends on identical weights
    /// without loading them twice.
    public init(sharing other: DiTWeights, precision: ComputePrecision) throws {
        config = other.config; source = other.source; scope = other.scope; fingerprint = other.fingerprint
        file = other.file
        allocator = nil
        self.precision = precision
        keepAlive = other
        matrices = other.matrices.mapValues { var m = $0; m.packed = nil; return m }
        vectors = other.vectors
        storageBytes = other.storageBytes
        maxHalfMatrix = matrices.values.filter { $0.dtype != .f32 }.map(\.count).max() ?? 0
        if GEMMBackend.current == .onednn {
            try packGEMMMatrices()
        } else if precision == .bf16 {
            throw DiTError.badConfig(source: "precision", field: "--precision", expected: "fp32 with --gemm openblas (BF16 needs --gemm onednn)", got: "bf16")
        }
    }

    deinit {
        for p in owned { p.deallocate() }
        if let a = allocator { for (p, n) in placed { a.deallocate(p, n) } }
    }

    /// True when routed-expert matrices live in memory from a `materialize` allocator.
    public var isMaterialized: Bool { !placed.isEmpty }

    // MARK: Access

    /// A 2-D view of a parameter: `[out, in]` for linears, `[D, C·p·p]` for the patch conv, `[T, D]` for
    /// `pos_embed`, `[rows, D]` for the label table.
    public func matrix(_ key: String) -> WeightMatrix {
        guard let m = matrices[key] else { preconditionFailure("DiTWeights: '\(key)' was not loaded (scope \(scope))") }
        return m
    }

    public func vector(_ key: String) -> UnsafePointer<Float> {
        guard let v = vectors[key] else { preconditionFailure("DiTWeights: '\(key)' was not loaded (scope \(scope))") }
        return v
    }

    /// Routed expert `e` of block `layer`: the fused `[gate_proj; up_proj]` matrix `[2H, D]` and `down_proj` `[D, H]`.
    public func expert(layer: Int, expert e: Int) -> (gateUp: WeightMatrix, down: WeightMatrix) {
        let x = "blocks.\(layer).moe.experts.\(e)."
        return (matrix(x + "gate_up.fused"), matrix(x + "down_proj.weight"))
    }

    public func sharedExpert(layer: Int) -> (gateUp: WeightMatrix, down: WeightMatrix) {
        let x = "blocks.\(layer).moe.shared_experts."
        return (matrix(x + "gate_up.fused"), matrix(x + "down_proj.weight"))
    }

    // MARK: Loading

    private func validate(specs: [TensorSpec], file f: SafetensorsFile) throws {
        let byKey = Dictionary(uniqueKeysWithValues: specs.map { ($0.key, $0) })
        for name in f.names where byKey[name] == nil {
            throw DiTError.unexpectedTensor(path: f.path, key: name, shape: f[name]!.shape)
        }
        for spec in specs {
            guard let e = f[spec.key] else { throw DiTError.missingTensor(path: f.path, key: spec.key, expectedShape: spec.shape) }
            guard e.shape == spec.shape else {
                throw DiTError.shapeMismatch(path: f.path, key: spec.key, expected: spec.shape, got: e.shape)
            }
            guard e.dtype.weightDType != nil else {
                throw DiTError.unsupportedDType(path: f.path, key: spec.key, dtype: e.dtype.rawValue, expected: "F32, F16 or BF16")
            }
        }
    }

    private func adopt(_ spec: TensorSpec, from f: SafetensorsFile) throws {
        let e = f[spec.key]!
        let dtype = e.dtype.weightDType!
        if let bad = NonFinite.scan(e.data, count: e.elementCount, dtype: dtype) {
            throw DiTError.nonFiniteWeight(path: f.path, key: spec.key, index: bad.first, value: bad.value, count: bad.count)
        }
        if spec.shape.count == 1 || spec.key == "pos_embed" || spec.key == "y_embedder.embedding_table.weight" {
            if dtype == .f32 {
                register(spec, f32: e.data)
            } else {
                let n = e.elementCount
                let p = UnsafeMutableRawPointer.allocate(byteCount: max(n, 1) * 4, alignment: 64)
                owned.append(p)
                let fp = p.bindMemory(to: Float.self, capacity: max(n, 1))
                let src = e.data.assumingMemoryBound(to: UInt16.self)
                if dtype == .f16 { widenF16(src, into: fp, count: n) } else { widenBF16(src, into: fp, count: n) }
                register(spec, f32: UnsafeRawPointer(p))
            }
        } else {
            let rows = spec.shape[0], cols = spec.shape.dropFirst().reduce(1, *)
            matrices[spec.key] = WeightMatrix(rows: rows, cols: cols, dtype: dtype, base: e.data)
            storageBytes += e.byteCount
            if dtype != .f32 { maxHalfMatrix = max(maxHalfMatrix, rows * cols) }
        }
    }

    private func register(_ spec: TensorSpec, f32 pointer: UnsafeRawPointer) {
        let n = spec.shape.reduce(1, *)
        storageBytes += n * 4
        if spec.shape.count == 1 {
            vectors[spec.key] = pointer.assumingMemoryBound(to: Float.self)
        } else {
            let rows = spec.key == "pos_embed" ? spec.shape[1] : spec.shape[0]
            matrices[spec.key] = WeightMatrix(rows: rows, cols: n / rows, dtype: .f32, base: pointer)
            vectors[spec.key] = pointer.assumingMemoryBound(to: Float.self)
        }
    }

    /// Stores each SwiGLU's gate_proj and up_proj as one `[2H, D]` matrix so the expert runs one fused GEMM.
    /// When the two tensors are adjacent in memory (safetensors files written in key order usually are) the fused
    /// matrix is a view; otherwise they are concatenated once, here.
    private func fuseExpertGateUp() throws {
        var prefixes: [String] = []
        for i in 0..<config.depth {
            if scope == .full && config.hasSharedExpert { prefixes.append("blocks.\(i).moe.shared_experts.") }
            for e in 0..<config.numExperts where scope.includes(TensorSpec(key: "", shape: [], expert: (i, e))) {
                prefixes.append("blocks.\(i).moe.experts.\(e).")
            }
        }
        for x in prefixes {
            let g = matrix(x + "gate_proj.weight"), u = matrix(x + "up_proj.weight")
            let bytes = g.count * g.dtype.byteSize
            if g.dtype == u.dtype && g.base + bytes == u.base {
                matrices[x + "gate_up.fused"] = WeightMatrix(rows: g.rows + u.rows, cols: g.cols, dtype: g.dtype, base: g.base)
            } else {
                let p = UnsafeMutableRawPointer.allocate(byteCount: 2 * bytes, alignment: 64)
                owned.append(p)
                if g.dtype == u.dtype {
                    p.copyMemory(from: g.base, byteCount: bytes)
                    (p + bytes).copyMemory(from: u.base, byteCount: bytes)
                    matrices[x + "gate_up.fused"] = WeightMatrix(rows: 2 * g.rows, cols: g.cols, dtype: g.dtype, base: p)
                } else {
                    // Mixed storage: widen both halves to F32.
                    p.deallocate(); owned.removeLast()
                    let q = UnsafeMutableRawPointer.allocate(byteCount: 2 * g.count * 4, alignment: 64)
                    owned.append(q)
                    let fq = q.bindMemory(to: Float.self, capacity: 2 * g.count)
                    for (m, dst) in [(g, fq), (u, fq + g.count)] {
                        let src = m.float32(scratch: dst)
                        if src != UnsafePointer(dst) { dst.update(from: src, count: m.count) }
                    }
                    matrices[x + "gate_up.fused"] = WeightMatrix(rows: 2 * g.rows, cols: g.cols, dtype: .f32, base: q)
                }
            }
        }
    }

    /// Copies each loaded routed expert's fused gate/up and down matrix into one allocation from `a` (fused gate/up
    /// first, then down) and points every key of that expert at the copy; the gate_proj and up_proj keys become the
    /// two halves of the copied fused matrix when it kept their dtype. Owned buffers no key refers to any more are
    /// freed. Every matrix key refers to the start of an owned buffer (or into the file map), so "refers to the
    /// start" is the complete liveness test.
    private func materializeExperts(with a: WeightAllocator) throws {
        for l in 0..<config.depth {
            for e in 0..<config.numExperts where scope.includes(TensorSpec(key: "", shape: [], expert: (l, e))) {
                let x = "blocks.\(l).moe.experts.\(e)."
                let gu = matrix(x + "gate_up.fused"), dn = matrix(x + "down_proj.weight")
                let guBytes = gu.count * gu.dtype.byteSize, dnBytes = dn.count * dn.dtype.byteSize
                // Keep the down matrix 64-byte aligned after the fused one.
                let dnOffset = (guBytes + 63) & ~63
                let bytes = dnOffset + dnBytes
                guard let p = a.allocate(bytes) else {
                    let name: String
                    switch source {
                    case let .safetensors(path): name = path
                    case let .random(seed): name = "random weights (seed \(seed))"
                    }
                    throw DiTError.io(path: name, reason: "cannot allocate \(bytes) bytes for the matrices of routed expert \(e) of layer \(l)")
                }
                placed.append((p, bytes))
                p.copyMemory(from: gu.base, byteCount: guBytes)
                (p + dnOffset).copyMemory(from: dn.base, byteCount: dnBytes)
                let newGU = WeightMatrix(rows: gu.rows, cols: gu.cols, dtype: gu.dtype, base: p)
                repoint(x + "gate_up.fused", to: newGU)
                repoint(x + "down_proj.weight", to: WeightMatrix(rows: dn.rows, cols: dn.cols, dtype: dn.dtype, base: p + dnOffset))
                // With mixed storage the fused matrix was widened to F32; gate_proj and up_proj then stay where
                // they were (nothing computes with them).
                let g = matrix(x + "gate_proj.weight"), u = matrix(x + "up_proj.weight")
                if g.dtype == gu.dtype && u.dtype == gu.dtype {
                    repoint(x + "gate_proj.weight", to: newGU.rows(0..<g.rows))
                    repoint(x + "up_proj.weight", to: newGU.rows(g.rows..<(g.rows + u.rows)))
                }
            }
        }
        var live = Set<UnsafeRawPointer>()
        for m in matrices.values { live.insert(m.base) }
        for v in vectors.values { live.insert(UnsafeRawPointer(v)) }
        owned.removeAll { p in
            guard !live.contains(UnsafeRawPointer(p)) else { return false }
            p.deallocate()
            return true
        }
    }

    /// Points matrix `key` (and its Float32 vector alias, when it has one) at `m`.
    private func repoint(_ key: String, to m: WeightMatrix) {
        matrices[key] = m
        if vectors[key] != nil { vectors[key] = m.base.assumingMemoryBound(to: Float.self) }
    }

    // MARK: Fingerprints

    /// The fingerprint `DiTWeights(config:source:)` would have, reading only the file's header and edges.
    public static func fingerprint(config: DiTConfig, source: WeightSource) throws -> String {
        switch source {
        case let .random(seed): return fingerprint(config: config, seed: seed)
        case let .safetensors(path): return fingerprint(config: config, file: try SafetensorsFile(path: path))
        }
    }

    static func fingerprint(config: DiTConfig, seed: UInt64) -> String {
        var h = FNV1a()
        h.add(config.fingerprintText)
        h.add("random:\(seed)")
        return h.hex
    }

    /// Config, every tensor's name/dtype/shape, the file size, and the first and last MiB of tensor data.
    static func fingerprint(config: DiTConfig, file f: SafetensorsFile) -> String {
        var h = FNV1a()
        h.add(config.fingerprintText)
        h.add("file:\(f.fileSize)")
        for name in f.names { let e = f[name]!; h.add("\(name):\(e.dtype.rawValue):\(e.shape)") }
        if let first = f.names.first.flatMap({ f[$0] }) { h.add(bytes: first.data, count: min(first.byteCount, 1 << 20)) }
        if let last = f.names.last.flatMap({ f[$0] }) {
            let n = min(last.byteCount, 1 << 20)
            h.add(bytes: last.data + (last.byteCount - n), count: n)
        }
        return h.hex
    }
}

extension ComputePrecision {
    /// The safetensors dtype name of this precision's GEMM inputs.
    var dtypeName: String { self == .bf16 ? "BF16" : "F32" }
}

extension DiTConfig {
    /// The architecture-defining fields (not the display name).
    var fingerprintText: String {
        "in\(inputSize) p\(patchSize) c\(inChannels) d\(hiddenSize) L\(depth) h\(numHeads) r\(mlpRatio) n\(numClasses) "
            + "s\(learnSigma) E\(numExperts) K\(numExpertsPerTok) f\(useFlashAttn) dense\(dense)"
    }
}

/// 64-bit FNV-1a, for fingerprints (not for security).
struct FNV1a {
    var state: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func add(bytes: UnsafeRawPointer, count: Int) {
        for i in 0..<count { state = (state ^ UInt64(bytes.load(fromByteOffset: i, as: UInt8.self))) &* 0x100_0000_01b3 }
    }
    mutating func add(_ s: String) { var s = s; s.withUTF8 { add(bytes: $0.baseAddress!, count: $0.count) }; state = (state ^ 0xff) &* 0x100_0000_01b3 }
    var hex: String { String(format: "%016llx", state) }
}
