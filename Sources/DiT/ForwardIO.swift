import Foundation

/// The input file of `moebench forward`: `x` [B, C, H, W] F32, `t` [B] F32, `y` [B] I64 (I32 accepted).
public struct ForwardInput {
    public var x: [Float]
    public var t: [Float]
    public var y: [Int32]
    public var batch: Int

    public init(x: [Float], t: [Float], y: [Int32], batch: Int) {
        self.x = x; self.t = t; self.y = y; self.batch = batch
    }

    /// Reads and validates against `config`; errors name the file, the tensor and what was expected.
    public static func load(path: String, config c: DiTConfig) throws -> ForwardInput {
        let f = try SafetensorsFile(path: path)
        func entry(_ key: String, _ dtypes: [SafetensorsDType]) throws -> SafetensorsEntry {
            guard let e = f[key] else {
                throw DiTError.badInput(path: path, field: key, reason: "missing (the input needs x [B,C,H,W] F32, t [B] F32, y [B] I64)")
            }
            guard dtypes.contains(e.dtype) else {
                throw DiTError.badInput(path: path, field: key, reason: "dtype \(e.dtype.rawValue), expected \(dtypes.map(\.rawValue).joined(separator: " or "))")
            }
            return e
        }
        let x = try entry("x", [.f32]), t = try entry("t", [.f32, .f64]), y = try entry("y", [.i64, .i32])
        guard x.shape.count == 4, x.shape[1] == c.inChannels, x.shape[2] == c.inputSize, x.shape[3] == c.inputSize,
              x.shape[0] > 0 else {
            throw DiTError.badInput(path: path, field: "x",
                                    reason: "shape \(x.shape), expected [B, \(c.inChannels), \(c.inputSize), \(c.inputSize)] for \(c.name)")
        }
        let b = x.shape[0]
        guard t.shape == [b] else { throw DiTError.badInput(path: path, field: "t", reason: "shape \(t.shape), expected [\(b)]") }
        guard y.shape == [b] else { throw DiTError.badInput(path: path, field: "y", reason: "shape \(y.shape), expected [\(b)]") }
        let labels = try f.integers("y")
        for (i, label) in labels.enumerated() where label < 0 || label > c.numClasses {
            throw DiTError.badInput(path: path, field: "y[\(i)]",
                                    reason: "class \(label) outside 0...\(c.numClasses) (\(c.numClasses) is the null class)")
        }
        let times = try f.floats("t")
        for (i, v) in times.enumerated() where !v.isFinite {
            throw DiTError.badInput(path: path, field: "t[\(i)]", reason: "not a finite number")
        }
        let xs = try f.floats("x")
        if let bad = xs.firstIndex(where: { !$0.isFinite }) {
            throw DiTError.badInput(path: path, field: "x", reason: "element \(bad) is not finite")
        }
        return ForwardInput(x: xs, t: times, y: labels.map { Int32($0) }, batch: b)
    }
}

/// Runs one forward (optionally the CFG forward) and returns the `moebench forward` output tensors.
public struct ForwardResult {
    public var out: [Float]
    public var outShape: [Int]
    /// Per MoE layer: `[B·T, K]` expert ids and gate weights, slots sorted by weight descending.
    public var routing: RoutingRecorder?

    public static func run(model: DiTModel, input: ForwardInput, cfgScale: Float?) throws -> ForwardResult {
        let c = model.config
        let recorder = c.isMoE ? RoutingRecorder() : nil
        model.observer = recorder
        defer { model.observer = nil }
        var out = [Float](repeating: 0, count: input.batch * c.outChannels * c.inputSize * c.inputSize)
        try input.x.withUnsafeBufferPointer { x in
            try input.t.withUnsafeBufferPointer { t in
                try input.y.withUnsafeBufferPointer { y in
                    try out.withUnsafeMutableBufferPointer { o in
                        if let s = cfgScale {
                            try model.forwardWithCFG(x: x.baseAddress!, t: t.baseAddress!, y: y.baseAddress!,
                                                     batch: input.batch, cfgScale: s, out: o.baseAddress!)
                        } else {
                            try model.forward(x: x.baseAddress!, t: t.baseAddress!, y: y.baseAddress!,
                                              batch: input.batch, out: o.baseAddress!)
                        }
                    }
                }
            }
        }
        return ForwardResult(out: out, outShape: [input.batch, c.outChannels, c.inputSize, c.inputSize], routing: recorder)
    }

    public func write(to path: String) throws {
        var w = SafetensorsWriter()
        w.add("out", shape: outShape, floats: out)
        if let routing {
            for layer in routing.experts.keys.sorted() {
                let shape = [routing.shape.rows, routing.shape.topK]
                w.add("routing.\(layer).experts", shape: shape, int32s: routing.experts[layer]!)
                w.add("routing.\(layer).weights", shape: shape, floats: routing.weights[layer]!)
            }
        }
        try w.write(to: path)
    }
}
