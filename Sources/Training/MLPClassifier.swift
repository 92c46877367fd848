import Diffusion
import DiT
import Foundation
import Tensor

/// Hidden-layer nonlinearity of an `MLPClassifier`.
public enum MLPActivation: String, Sendable, Codable {
    /// max(v, 0)
    case relu
    /// v·σ(v), σ the logistic function
    case silu
}

/// A small multilayer perceptron classifier: Linear → act → … → Linear, softmax cross-entropy on integer labels.
///
/// `widths = [in, h₁, …, h_{L−1}, classes]` gives L linear layers; layer i has `layers.<i>.weight` `[out, in]` and
/// `layers.<i>.bias` `[out]` (the `torch.nn.Linear` layout and key names of `nn.Sequential` without the activation
/// slots), stored flat in one `ParameterSet` so `AdamW` updates it in one pass. The features of a sample are the
/// activations of the last hidden layer (after the nonlinearity), width h_{L−1}.
///
/// Forward and backward run on preallocated workspace grown to the largest batch seen; after the first call of a
/// given batch size nothing allocates. Not thread-safe: one caller per instance.
public final class MLPClassifier {
    public let widths: [Int]
    public let activation: MLPActivation
    public let params: ParameterSet
    /// d loss / d params of the last `lossAndGradients` call (overwritten by each call).
    public let grads: ParameterSet

    public var inputWidth: Int { widths[0] }
    public var classes: Int { widths[widths.count - 1] }
    /// Width of the feature layer (the last hidden layer).
    public var featureWidth: Int { widths[widths.count - 2] }
    public var layerCount: Int { widths.count - 1 }

    // Workspace for `capacity` rows: pre[l] = z_{l+1} (layer l's linear output, pre[L−1] = logits), post[l] =
    // act(z_{l+1}) for hidden layers; two gradient buffers of the widest layer; softmax probabilities.
    private var capacity = 0
    private var pre: [UnsafeMutablePointer<Float>] = []
    private var post: [UnsafeMutablePointer<Float>] = []
    private var gradA = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private var gradB = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private let weightOffsets: [Int], biasOffsets: [Int]

    public static func weightKey(_ layer: Int) -> String { "layers.\(layer).weight" }
    public static func biasKey(_ layer: Int) -> String { "layers.\(layer).bias" }

    public static func tensorSpecs(widths: [Int]) -> [TensorSpec] {
        (0..<(widths.count - 1)).flatMap { i in
            [TensorSpec(key: weightKey(i), shape: [widths[i + 1], widths[i]]), TensorSpec(key: biasKey(i), shape: [widths[i + 1]])]
        }
    }

    /// A zero-initialised network (call `initialise(seed:)` or load weights).
    public init(widths: [Int], activation: MLPActivation = .relu, name: String = "mlp") {
        precondition(widths.count >= 3 && widths.allSatisfy { $0 > 0 },
                     "MLPClassifier: widths must be [in, hidden…, classes] with at least one hidden layer, all > 0; got \(widths)")
        self.widths = widths
        self.activation = activation
        let p = ParameterSet(specs: Self.tensorSpecs(widths: widths), name: name)
        params = p
        grads = ParameterSet(like: p)
        weightOffsets = (0..<(widths.count - 1)).map { p.offsets[Self.weightKey($0)]! }
        biasOffsets = (0..<(widths.count - 1)).map { p.offsets[Self.biasKey($0)]! }
    }

    /// A seeded network with `torch.nn.Linear`'s default initialisation: weight and bias uniform in ±1/√fan_in.
    public convenience init(widths: [Int], activation: MLPActivation = .relu, name: String = "mlp", seed: UInt64) {
        self.init(widths: widths, activation: activation, name: name)
        initialise(seed: seed)
    }

    deinit {
        pre.forEach { $0.deallocate() }; post.forEach { $0.deallocate() }
        gradA.deallocate(); gradB.deallocate()
    }

    public func initialise(seed: UInt64) {
        var rng = Xoshiro256(seed: seed ^ 0x6D6C_7069_6E69_74)  // "mlpinit"
        for i in 0..<layerCount {
            let bound = 1 / Double(widths[i]).squareRoot()
            let w = weight(i), b = bias(i)
            for j in 0..<(widths[i + 1] * widths[i]) { w[j] = Float((2 * Double(rng.next() >> 11) * 0x1p-53 - 1) * bound) }
            for j in 0..<widths[i + 1] { b[j] = Float((2 * Double(rng.next() >> 11) * 0x1p-53 - 1) * bound) }
        }
    }

    @inline(__always) func weight(_ i: Int) -> UnsafeMutablePointer<Float> { params.values + weightOffsets[i] }
    @inline(__always) func bias(_ i: Int) -> UnsafeMutablePointer<Float> { params.values + biasOffsets[i] }

    /// Grows the workspace to `batch` rows (the only allocation; a no-op when already large enough).
    public func reserve(_ batch: Int) {
        guard batch > capacity else { return }
        pre.forEach { $0.deallocate() }; post.forEach { $0.deallocate() }
        gradA.deallocate(); gradB.deallocate()
        pre = (1..<widths.count).map { .allocate(capacity: batch * widths[$0]) }
        post = (1..<(widths.count - 1)).map { .allocate(capacity: batch * widths[$0]) }
        let widest = widths.max()!
        gradA = .allocate(capacity: batch * widest)
        gradB = .allocate(capacity: batch * widest)
        capacity = batch
    }

    /// Logits of `batch` inputs (`x` `[batch, in]` row-major). Returns the workspace's logits `[batch, classes]`,
    /// valid until the next call; `features` then holds the last hidden layer's activations.
    @discardableResult
    public func forward(_ x: UnsafePointer<Float>, batch: Int) -> UnsafePointer<Float> {
        reserve(batch)
        var input = x
        for i in 0..<layerCount {
            parallelLinear(input, rows: batch, inFeatures: widths[i], weight: weight(i), outFeatures: widths[i + 1],
                           bias: bias(i), into: pre[i])
            if i < layerCount - 1 {
                let z = pre[i], a = post[i], n = batch * widths[i + 1]
                switch activation {
                case .relu: for j in 0..<n { a[j] = max(z[j], 0) }
                case .silu: for j in 0..<n { let v = z[j]; a[j] = v / (1 + Foundation.exp(-v)) }
                }
                input = UnsafePointer(a)
            }
        }
        return UnsafePointer(pre[layerCount - 1])
    }

    /// The last hidden layer's activations of the last `forward` (`[batch, featureWidth]`).
    public var features: UnsafePointer<Float> { UnsafePointer(post[layerCount - 2]) }

    /// Writes argmax_k logit_k of each input to `out` (ties: the lowest index).
    public func predict(_ x: UnsafePointer<Float>, batch: Int, into out: UnsafeMutablePointer<Int>) {
        let logits = forward(x, batch: batch), c = classes
        for b in 0..<batch { out[b] = Self.argmax(logits + b * c, count: c) }
    }

    @inline(__always) static func argmax(_ v: UnsafePointer<Float>, count: Int) -> Int {
        var best = 0, m = v[0]
        for k in 1..<count where v[k] > m { m = v[k]; best = k }
        return best
    }

    /// Mean softmax cross-entropy over the batch, −(1/B)·Σ_b log softmax(z_b)[label_b], and its gradient with
    /// respect to every parameter into `grads` (overwritten). Labels are class indices in 0..<classes.
    @discardableResult
    public func lossAndGradients(_ x: UnsafePointer<Float>, labels: UnsafePointer<Int32>, batch: Int) -> Double {
        let logits = UnsafeMutablePointer(mutating: forward(x, batch: batch)), c = classes
        // dz_L = (softmax(z) − onehot)/B, written over the logits (the forward's last output is not needed again).
        var loss = 0.0
        let invB = 1 / Float(batch)
        for b in 0..<batch {
            let z = logits + b * c, y = Int(labels[b])
            precondition(y >= 0 && y < c, "MLPClassifier: label \(y) outside 0..<\(c)")
            var m = z[0]
            for k in 1..<c { m = max(m, z[k]) }
            var s: Double = 0
            for k in 0..<c { s += Double(Foundation.exp(z[k] - m)) }
            loss += Foundation.log(s) + Double(m) - Double(z[y])
            let inv = Float(1 / s)
            for k in 0..<c { z[k] = Foundation.exp(z[k] - m) * inv * invB }
            z[y] -= invB
        }
        grads.zero()
        var dz = logits
        for i in stride(from: layerCount - 1, through: 0, by: -1) {
            let input: UnsafePointer<Float> = i == 0 ? x : UnsafePointer(post[i - 1])
            let dx = i == 0 ? nil : (dz == gradA ? gradB : gradA)
            linearBackward(x: input, dy: dz, rows: batch, inFeatures: widths[i], outFeatures: widths[i + 1],
                           weight: weight(i), dWeight: grads.values + weightOffsets[i],
                           dBias: grads.values + biasOffsets[i], dx: dx)
            guard let da = dx else { break }
            // da ← da ⊙ act'(z_i): the gradient at layer i−1's pre-activation.
            let z = pre[i - 1], n = batch * widths[i]
            switch activation {
            case .relu: for j in 0..<n where z[j] <= 0 { da[j] = 0 }
            case .silu:
                for j in 0..<n {
                    let v = z[j], s = 1 / (1 + Foundation.exp(-v))
                    da[j] *= s * (1 + v * (1 - s))
                }
            }
            dz = da
        }
        return loss / Double(batch)
    }

    // MARK: Files

    /// Writes the parameters (F32, keys `layers.<i>.weight|bias`) with `widths` and `activation` in the header
    /// metadata, plus `metadata`.
    public func save(to path: String, metadata: [String: String] = [:]) throws {
        var m = metadata
        m["widths"] = widths.map(String.init).joined(separator: ",")
        m["activation"] = activation.rawValue
        try params.write(to: path, metadata: m)
    }

    /// Reads a file written by `save`: the shape comes from the `widths` and `activation` metadata, then every
    /// tensor is checked against it. Errors name the file and the field or key.
    public static func load(from path: String, name: String = "mlp") throws -> MLPClassifier {
        let f = try SafetensorsFile(path: path)
        guard let w = f.metadata["widths"] else {
            throw DiTError.badInput(path: path, field: "__metadata__.widths", reason: "missing; expected the layer widths as a comma list, e.g. \"64,128,64,10\"")
        }
        let widths = w.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard widths.count >= 3, widths.count == w.split(separator: ",").count, widths.allSatisfy({ $0 > 0 }) else {
            throw DiTError.badInput(path: path, field: "__metadata__.widths", reason: "'\(w)' is not a comma list of at least 3 positive integers")
        }
        let a = f.metadata["activation"] ?? "relu"
        guard let act = MLPActivation(rawValue: a) else {
            throw DiTError.badInput(path: path, field: "__metadata__.activation", reason: "'\(a)' is not relu or silu")
        }
        let model = MLPClassifier(widths: widths, activation: act, name: name)
        try model.params.read(from: path)
        return model
    }
}

/// Settings of `MLPClassifier.train`.
public struct MLPTrainingOptions: Sendable, Equatable {
    public var steps = 3000
    public var batch = 128
    /// Peak learning rate; linear warm-up over `warmup` steps, then cosine decay to 0 at `steps`.
    public var lr = 1e-3
    public var warmup = 100
    public var weightDecay = 0.0
    /// Global gradient-norm clip (0: none).
    public var clip = 0.0
    public var seed: UInt64 = 0
    public init() {}

    /// Learning rate at optimiser step `s` (0-based).
    public func learningRate(at s: Int) -> Double {
        if s < warmup { return lr * Double(s + 1) / Double(warmup) }
        let p = Double(s - warmup) / Double(max(steps - warmup, 1))
        return lr * 0.5 * (1 + Foundation.cos(Double.pi * p))
    }
}

extension MLPClassifier {
    /// Trains with AdamW for `options.steps` steps. `makeBatch(step, inputs, labels)` fills one batch
    /// (`[batch, in]` inputs and `batch` labels; the buffers are reused). `onStep(step, loss)` is called after each
    /// update (1-based step). Throws when the loss is not finite.
    public func train(_ options: MLPTrainingOptions,
                      makeBatch: (Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Int32>) -> Void,
                      onStep: (Int, Double) -> Void = { _, _ in }) throws {
        let opt = AdamW(like: params, weightDecay: Float(options.weightDecay))
        let inputs = UnsafeMutablePointer<Float>.allocate(capacity: options.batch * inputWidth)
        let labels = UnsafeMutablePointer<Int32>.allocate(capacity: options.batch)
        defer { inputs.deallocate(); labels.deallocate() }
        for s in 0..<options.steps {
            makeBatch(s, inputs, labels)
            let loss = lossAndGradients(inputs, labels: labels, batch: options.batch)
            guard loss.isFinite else { throw TrainingError.nonFinite(step: s + 1, what: "the cross-entropy loss") }
            opt.update(params, grads: grads, lr: Float(options.learningRate(at: s)), clip: Float(options.clip))
            onStep(s + 1, loss)
        }
    }
}
