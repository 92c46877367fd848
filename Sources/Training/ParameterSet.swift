import Foundation
import DiT
import Tensor

/// One Float32 value per model parameter, in one contiguous buffer laid out in the order of the config's manifest
/// (`DiTConfig.tensorSpecs`, the upstream state-dict keys). The trainer keeps five of these — parameters,
/// gradients, Adam's two moments and the EMA — so an optimiser step is one pass over flat memory.
///
/// Because each SwiGLU's `gate_proj` and `up_proj` are adjacent in the manifest, `[gate_proj; up_proj]` is one
/// `[2H, D]` matrix here (`fused(_:)`), so a forward or backward runs one GEMM for both.
///
/// Other models (the MLP classifiers) build one from their own tensor list with `init(specs:name:)`; such a set has
/// no DiT config.
public final class ParameterSet {
    private let ditConfig: DiTConfig?
    /// The DiT config the set was made for; only sets made with `init(config:)` have one.
    public var config: DiTConfig {
        guard let c = ditConfig else { preconditionFailure("ParameterSet '\(name)' was made from a tensor list, not a DiT config") }
        return c
    }
    /// Model name used in messages (the config's name for DiT sets).
    public let name: String
    public let specs: [TensorSpec]
    /// Offset of each key in `values`.
    public let offsets: [String: Int]
    public let count: Int
    public let values: UnsafeMutablePointer<Float>

    public convenience init(config: DiTConfig) {
        self.init(specs: config.tensorSpecs, name: config.name, config: config)
    }

    /// A set over an arbitrary tensor list (keys unique), laid out in the list's order, all values 0.
    public convenience init(specs: [TensorSpec], name: String) {
        self.init(specs: specs, name: name, config: nil)
    }

    /// An all-zero set with the same tensors (and config, if any) as `other`.
    public convenience init(like other: ParameterSet) {
        self.init(specs: other.specs, name: other.name, config: other.ditConfig)
    }

    private init(specs: [TensorSpec], name: String, config: DiTConfig?) {
        ditConfig = config
        self.name = name
        self.specs = specs
        var offsets: [String: Int] = [:], n = 0
        for s in specs { offsets[s.key] = n; n += s.shape.reduce(1, *) }
        self.offsets = offsets
        count = n
        values = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
        values.initialize(repeating: 0, count: max(n, 1))
    }

    deinit { values.deallocate() }

    public subscript(_ key: String) -> UnsafeMutablePointer<Float> {
        guard let o = offsets[key] else { preconditionFailure("ParameterSet: no parameter '\(key)' in \(name)") }
        return values + o
    }

    /// The fused `[gate_proj; up_proj]` of the SwiGLU whose keys start with `prefix` (e.g. `blocks.0.moe.experts.3.`).
    public func fused(_ prefix: String) -> UnsafeMutablePointer<Float> { self[prefix + "gate_proj.weight"] }

    public func zero() { values.update(repeating: 0, count: count) }
    public func copy(from other: ParameterSet) {
        precondition(other.count == count, "ParameterSet: copying \(other.count) values into \(count)")
        values.update(from: other.values, count: count)
    }

    /// Σ v² over every value (Float64 accumulation).
    public func sumOfSquares() -> Double {
        var s = 0.0
        for i in 0..<count { s += Double(values[i]) * Double(values[i]) }
        return s
    }

    /// Writes every tensor under its upstream key and shape, F32, with `metadata` in the header.
    public func write(to path: String, metadata: [String: String] = [:]) throws {
        var w = SafetensorsWriter()
        w.metadata = metadata
        for s in specs {
            let n = s.shape.reduce(1, *)
            w.add(s.key, shape: s.shape, floats: Array(UnsafeBufferPointer(start: self[s.key], count: n)))
        }
        try w.write(to: path)
    }

    /// Reads a safetensors file holding exactly this config's tensors (F32, F16 or BF16; widened to F32).
    /// Errors name the file, the key and what was expected.
    public func read(from path: String) throws {
        let f = try SafetensorsFile(path: path)
        let expected = Set(specs.map(\.key))
        if let extra = f.names.first(where: { !expected.contains($0) }) {
            throw DiTError.unexpectedTensor(path: path, key: extra, shape: f[extra]!.shape)
        }
        for s in specs {
            guard let e = f[s.key] else { throw DiTError.missingTensor(path: path, key: s.key, expectedShape: s.shape) }
            guard e.shape == s.shape else { throw DiTError.shapeMismatch(path: path, key: s.key, expected: s.shape, got: e.shape) }
            let n = e.elementCount, dst = self[s.key]
            switch e.dtype {
            case .f32: dst.update(from: e.data.assumingMemoryBound(to: Float.self), count: n)
            case .f16: widenF16(e.data.assumingMemoryBound(to: UInt16.self), into: dst, count: n)
            case .bf16: widenBF16(e.data.assumingMemoryBound(to: UInt16.self), into: dst, count: n)
            default:
                throw DiTError.unsupportedDType(path: path, key: s.key, dtype: e.dtype.rawValue, expected: "F32, F16 or BF16")
            }
        }
    }
}
