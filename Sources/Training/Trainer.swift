import DiT
import Diffusion
import Foundation
import Metrics
import Tensor

/// How a training run goes. Every field is recorded in the run's `state.json`; a resumed run must agree on the
/// fields that shape the result (config, seed, batch, data).
public struct TrainingOptions: Codable, Equatable, Sendable {
    public var steps = 2000
    public var batch = 128
    /// Peak learning rate after a linear warm-up of `warmupSteps`, then cosine decay to `minLRFraction`·lr.
    public var lr = 1e-3
    public var warmupSteps = 100
    public var minLRFraction = 0.1
    public var weightDecay = 0.0
    /// α of the expert-level balance loss per MoE layer (upstream's code: 0.01; 0 turns it off).
    public var balanceAlpha = 0.01
    /// Probability that a training label is replaced by the null class (classifier-free guidance).
    public var labelDropout = 0.1
    /// EMA decay, warmed up as min(decay, (1 + s)/(10 + s)).
    public var emaDecay = 0.999
    /// Global gradient-norm clip (0: none).
    public var clip = 1.0
    public var seed: UInt64 = 0
    public var logEvery = 10
    public var evalEvery = 250
    public var checkpointEvery = 250
    /// Held-out evaluation: (x₀, t, ε) triples per held-out image, fixed for every model and seed.
    public var evalDrawsPerImage = 4

    public init() {}

    /// Learning rate at 0-based step s.
    public func learningRate(at s: Int) -> Double {
        if s < warmupSteps { return lr * Double(s + 1) / Double(warmupSteps) }
        let span = max(steps - warmupSteps, 1)
        let progress = min(Double(s - warmupSteps) / Double(span), 1)
        return lr * (minLRFraction + (1 - minLRFraction) * 0.5 * (1 + cos(Double.pi * progress)))
    }
}

/// One JSONL record of the training log (`train.jsonl`): either a training window (`kind` = "train") or a
/// held-out evaluation (`kind` = "eval").
public struct TrainingLogRecord: Codable, Sendable {
    public var kind: String
    public var step: Int
    public var loss: Double
    public var mse: Double
    public var vb: Double
    /// Σ over MoE layers of α·Σ_i P_i f_i (train records; mean over the window).
    public var balance: Double?
    public var balancePerLayer: [Double]?
    /// Per MoE layer, the fraction of routed (token, slot) pairs that went to each expert over the window.
    public var expertLoad: [[Double]]?
    /// Per MoE layer: balancedness (mean load / max load) and MaxVio (max load / mean − 1) of `expertLoad`.
    public var balancedness: [Double]?
    public var maxVio: [Double]?
    public var lr: Double?
    public var gradNorm: Double?
    public var samplesPerSecond: Double?
    public var elapsedSeconds: Double
    /// eval records: which weights were evaluated ("ema" or "raw").
    public var weights: String?
}

/// Where a run keeps its files (all in one directory):
/// - `ema.safetensors`, `model.safetensors`: EMA and raw weights, upstream key names, F32;
/// - `adam_m.safetensors`, `adam_v.safetensors`: optimiser moments; `state.json`: step, options, config;
/// - `config.json`: the model config with upstream argument names; `train.jsonl`: the log.
public struct TrainingRunFiles {
    public let directory: URL
    public init(_ path: String) { directory = URL(fileURLWithPath: path) }
    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
    public var ema: String { path("ema.safetensors") }
    public var raw: String { path("model.safetensors") }
    var adamM: String { path("adam_m.safetensors") }
    var adamV: String { path("adam_v.safetensors") }
    var state: String { path("state.json") }
    public var config: String { path("config.json") }
    public var log: String { path("train.jsonl") }
}

struct TrainingState: Codable {
    var step: Int
    var adamStep: Int
    var options: TrainingOptions
    var config: DiTConfig
    var data: String
    var elapsedSeconds: Double
}

public enum TrainingError: Error, CustomStringConvertible {
    case incompatibleResume(path: String, field: String, saved: String, requested: String)
    case badData(String)
    case nonFinite(step: Int, what: String)

    public var description: String {
        switch self {
        case let .incompatibleResume(path, field, saved, requested):
            return "\(path): the run there was started with \(field) = \(saved), this command asks for \(requested); use another --out directory or the same \(field)"
        case let .badData(s): return s
        case let .nonFinite(step, what): return "training diverged at step \(step): \(what) is not finite (lower --lr or raise --clip)"
        }
    }
}

/// Trains a DiT-MoE or dense DiT with the DDPM objective on an image data set held in memory, writing checkpoints
/// and a JSONL log as it goes, and resuming from the last checkpoint in its directory.
public final class Trainer {
    public let config: DiTConfig
    public let options: TrainingOptions
    public let files: TrainingRunFiles
    public let model: TrainableDiT
    public let ema: ParameterSet
    let optimizer: AdamW
    let objective = DDPMObjective()
    let train: DigitsDataset
    let heldOut: DigitsDataset
    let dataName: String
    /// Called after every logged window and evaluation (progress display).
    public var onRecord: ((TrainingLogRecord) -> Void)?
    public private(set) var step = 0
    private var elapsedBefore = 0.0

    public init(config: DiTConfig, options: TrainingOptions, train: DigitsDataset, heldOut: DigitsDataset,
                dataName: String = "digits", directory: String) throws {
        let side = DigitsDataset.side
        guard config.inputSize == side, config.inChannels == 1, config.numClasses == DigitsDataset.classes,
              config.learnSigma else {
            throw TrainingError.badData("--data \(dataName) holds 8×8 one-channel images of 10 classes: the config needs input_size 8, in_channels 1, num_classes 10 and learn_sigma true (got input_size \(config.inputSize), in_channels \(config.inChannels), num_classes \(config.numClasses), learn_sigma \(config.learnSigma))")
        }
        self.config = config; self.options = options
        self.train = train; self.heldOut = heldOut; self.dataName = dataName
        files = TrainingRunFiles(directory)
        model = TrainableDiT(config: config, balanceAlpha: Float(options.balanceAlpha))
        ema = ParameterSet(config: config)
        optimizer = AdamW(like: model.params, weightDecay: Float(options.weightDecay))
        try FileManager.default.createDirectory(at: files.directory, withIntermediateDirectories: true)
        if FileManager.default.fileExists(atPath: files.state) {
            try resume()
        } else {
            UpstreamInit.fill(model.params, seed: options.seed)
            ema.copy(from: model.params)
            try? FileManager.default.removeItem(atPath: files.log)
        }
    }

    /// True when the directory held a checkpoint this trainer continues from.
    public var resumed: Bool { step > 0 }

    private func resume() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: files.state))
        let state = try JSONDecoder().decode(TrainingState.self, from: data)
        func check(_ field: String, _ saved: String, _ requested: String) throws {
            if saved != requested {
                throw TrainingError.incompatibleResume(path: files.directory.path, field: field, saved: saved, requested: requested)
            }
        }
        try check("config", "\(state.config)", "\(config)")
        try check("seed", "\(state.options.seed)", "\(options.seed)")
        try check("batch", "\(state.options.batch)", "\(options.batch)")
        try check("data", state.data, dataName)
        try check("balance alpha", "\(state.options.balanceAlpha)", "\(options.balanceAlpha)")
        try model.params.read(from: files.raw)
        try ema.read(from: files.ema)
        try optimizer.m.read(from: files.adamM)
        try optimizer.v.read(from: files.adamV)
        optimizer.step = state.adamStep
        step = state.step
        elapsedBefore = state.elapsedSeconds
        // Keep only the log lines up to the checkpoint, so a resumed log has no duplicates.
        if let text = try? String(contentsOfFile: files.log, encoding: .utf8) {
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let kept = text.split(separator: "\n").filter { line in
                guard let r = try? decoder.decode(TrainingLogRecord.self, from: Data(line.utf8)) else { return false }
                return r.step <= step
            }
            try (kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).write(toFile: files.log, atomically: true, encoding: .utf8)
        }
    }

    // MARK: Running

    /// Trains until `options.steps`, checkpointing every `checkpointEvery` steps and at the end. `shouldStop` is
    /// polled once per step (SIGINT): the run then checkpoints and returns early.
    public func run(shouldStop: () -> Bool = { false }) throws {
        let c = config, b = options.batch, image = DigitsDataset.imageSize
        let x0 = FloatBuffer(count: b * image), noise = FloatBuffer(count: b * image)
        let tSteps = TypedBuffer<Int32>(count: b, repeating: 0), y = TypedBuffer<Int32>(count: b, repeating: 0)
        let stepper = TrainingStep(config: c, batch: b)
        let log = try LogWriter(path: files.log)
        let clock = ContinuousClock(), start = clock.now
        func elapsed() -> Double { elapsedBefore + seconds(clock.now - start) }

        if step == 0 {
            let record = evaluate(weights: model.params, name: "ema", elapsed: 0)
            try log.append(record); onRecord?(record)
        }
        var window = Window(layers: c.isMoE ? c.depth : 0, experts: c.isMoE ? c.numExperts : 0)
        var windowStart = clock.now
        while step < options.steps {
            if shouldStop() { break }
            var rng = Xoshiro256(seed: Trainer.stepSeed(options.seed, step))
            for i in 0..<b {
                let k = Int(rng.next() % UInt64(train.count))
                train.pixels.withUnsafeBufferPointer { (x0.pointer + i * image).update(from: $0.baseAddress! + k * image, count: image) }
                y.pointer[i] = Double(rng.next() >> 11) / Double(1 << 53) < options.labelDropout ? Int32(c.numClasses) : train.labels[k]
                tSteps.pointer[i] = Int32(rng.next() % UInt64(objective.steps))
            }
            for i in 0..<(b * image) { noise.pointer[i] = Float(rng.normal()) }
            let lr = options.learningRate(at: step)
            let (terms, norm) = stepper.run(model: model, optimizer: optimizer, x0: x0.pointer, noise: noise.pointer,
                                            t: tSteps.pointer, y: y.pointer, lr: lr, clip: options.clip)
            guard terms.mean.isFinite, norm.isFinite else {
                throw TrainingError.nonFinite(step: step, what: terms.mean.isFinite ? "the gradient norm" : "the loss")
            }
            let decay = min(options.emaDecay, Double(1 + step) / Double(10 + step))
            updateEMA(ema, from: model.params, decay: Float(decay))
            step += 1
            window.add(terms: terms, balance: model.balanceLoss, counts: model.expertCounts, lr: lr, norm: norm, samples: b)

            if step % options.logEvery == 0 || step == options.steps {
                let seconds = seconds(clock.now - windowStart)
                let record = window.record(step: step, elapsed: elapsed(), seconds: seconds)
                try log.append(record); onRecord?(record)
                window = Window(layers: window.layers, experts: window.experts)
                windowStart = clock.now
            }
            if step % options.evalEvery == 0 || step == options.steps {
                let record = evaluate(weights: ema, name: "ema", elapsed: elapsed())
                try log.append(record); onRecord?(record)
            }
            if step % options.checkpointEvery == 0 || step == options.steps { try checkpoint(elapsed: elapsed()) }
        }
        if step < options.steps { try checkpoint(elapsed: elapsed()) }
    }

    static func stepSeed(_ seed: UInt64, _ step: Int) -> UInt64 {
        var s = SplitMix64(seed: seed &+ 0x7472_6169_6E00 &+ UInt64(step) &* 0x9E37_79B9_7F4A_7C15)
        return s.next()
    }

    /// Writes the checkpoint files, each through a temporary file renamed into place.
    public func checkpoint(elapsed: Double) throws {
        let meta = ["config": configJSON(config), "step": "\(step)", "seed": "\(options.seed)",
                    "data": dataName, "format": "moebench training checkpoint"]
        func atomically(_ path: String, _ write: (String) throws -> Void) throws {
            let tmp = path + ".tmp"
            try write(tmp)
            guard rename(tmp, path) == 0 else {
                throw DiTError.io(path: path, reason: "cannot move \(tmp) into place: \(String(cString: strerror(errno)))")
            }
        }
        try atomically(files.ema) { try ema.write(to: $0, metadata: meta.merging(["weights": "ema"]) { $1 }) }
        try atomically(files.raw) { try model.params.write(to: $0, metadata: meta.merging(["weights": "raw"]) { $1 }) }
        try atomically(files.adamM) { try optimizer.m.write(to: $0) }
        try atomically(files.adamV) { try optimizer.v.write(to: $0) }
        try atomically(files.config) { try Data(configJSON(config).utf8).write(to: URL(fileURLWithPath: $0)) }
        let state = TrainingState(step: step, adamStep: optimizer.step, options: options, config: config, data: dataName,
                                  elapsedSeconds: elapsed)
        let encoder = JSONEncoder(); encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try atomically(files.state) { try encoder.encode(state).write(to: URL(fileURLWithPath: $0)) }
    }

    // MARK: Held-out evaluation

    private lazy var evalModel = TrainableDiT(config: config, balanceAlpha: 0)

    /// Held-out loss of `weights`: every held-out image with `evalDrawsPerImage` (t, ε) draws from a fixed seed (the
    /// same for every model and training seed), conditional on the true label.
    public func evaluate(weights: ParameterSet, name: String, elapsed: Double) -> TrainingLogRecord {
        let terms = Trainer.heldOutLoss(model: evalModel, weights: weights, data: heldOut, objective: objective,
                                        drawsPerImage: options.evalDrawsPerImage, batch: options.batch)
        return TrainingLogRecord(kind: "eval", step: step, loss: terms.mean, mse: terms.meanMSE, vb: terms.meanVB,
                                 elapsedSeconds: elapsed, weights: name)
    }

    static func heldOutLoss(model: TrainableDiT, weights: ParameterSet, data: DigitsDataset, objective: DDPMObjective,
                            drawsPerImage: Int, batch: Int) -> DDPMObjective.Terms {
        model.params.copy(from: weights)
        let image = DigitsDataset.imageSize, total = data.count * drawsPerImage
        var rng = Xoshiro256(seed: 0x6865_6C64)  // "held": fixed for every run
        var all = DDPMObjective.Terms(mse: [], vb: [])
        let x0 = FloatBuffer(count: batch * image), noise = FloatBuffer(count: batch * image), xt = FloatBuffer(count: batch * image)
        let t = TypedBuffer<Int32>(count: batch, repeating: 0), tf = FloatBuffer(count: batch)
        let y = TypedBuffer<Int32>(count: batch, repeating: 0)
        var start = 0
        while start < total {
            let n = min(batch, total - start)
            for i in 0..<n {
                let k = (start + i) / drawsPerImage
                data.pixels.withUnsafeBufferPointer { (x0.pointer + i * image).update(from: $0.baseAddress! + k * image, count: image) }
                y.pointer[i] = data.labels[k]
                t.pointer[i] = Int32(rng.next() % 1000); tf.pointer[i] = Float(t.pointer[i])
                for j in 0..<image { noise.pointer[i * image + j] = Float(rng.normal()) }
            }
            objective.noisy(x0: x0.pointer, noise: noise.pointer, t: t.pointer, batch: n, imageSize: image, into: xt.pointer)
            let out = model.forward(x: xt.pointer, t: tf.pointer, y: y.pointer, batch: n)
            let terms = objective.evaluate(out: out, x0: x0.pointer, xt: xt.pointer, noise: noise.pointer, t: t.pointer,
                                           batch: n, channels: 1, plane: image, dOut: nil)
            all.mse += terms.mse; all.vb += terms.vb
            start += n
        }
        return all
    }
}

/// One optimiser step of the DDPM objective on a given batch: x_t from (x₀, ε, t), forward, loss terms and
/// d(loss)/d(output), backward, AdamW (with clipping). Owns the per-batch buffers, allocated once.
public final class TrainingStep {
    let objective = DDPMObjective()
    let config: DiTConfig
    let batch: Int
    let xt: FloatBuffer, tFloat: FloatBuffer, dOut: FloatBuffer

    public init(config: DiTConfig, batch: Int) {
        self.config = config; self.batch = batch
        let image = config.inChannels * config.inputSize * config.inputSize
        xt = FloatBuffer(count: batch * image); tFloat = FloatBuffer(count: batch)
        dOut = FloatBuffer(count: batch * config.outChannels * config.inputSize * config.inputSize)
    }

    /// x₀ and ε are `[B, C, H, W]`, t the DDPM step indices, y the (already dropped) labels. Returns the loss terms
    /// (the balance losses are in `model.balanceLoss`) and the gradient norm before clipping.
    public func run(model: TrainableDiT, optimizer: AdamW, x0: UnsafePointer<Float>, noise: UnsafePointer<Float>,
                    t: UnsafePointer<Int32>, y: UnsafePointer<Int32>, lr: Double, clip: Double) -> (DDPMObjective.Terms, Double) {
        let c = config, image = c.inChannels * c.inputSize * c.inputSize
        objective.noisy(x0: x0, noise: noise, t: t, batch: batch, imageSize: image, into: xt.pointer)
        for i in 0..<batch { tFloat.pointer[i] = Float(t[i]) }
        model.grads.zero()
        let out = model.forward(x: xt.pointer, t: tFloat.pointer, y: y, batch: batch)
        let terms = objective.evaluate(out: out, x0: x0, xt: xt.pointer, noise: noise, t: t, batch: batch,
                                       channels: c.inChannels, plane: c.inputSize * c.inputSize, dOut: dOut.pointer)
        model.backward(dOut: dOut.pointer)
        let norm = optimizer.update(model.params, grads: model.grads, lr: Float(lr), clip: Float(clip))
        return (terms, norm)
    }
}

/// Sums over the steps of one log window.
struct Window {
    let layers: Int, experts: Int
    var steps = 0, samples = 0
    var loss = 0.0, mse = 0.0, vb = 0.0, balance: [Double], counts: [[Double]]
    var lr = 0.0, norm = 0.0

    init(layers: Int, experts: Int) {
        self.layers = layers; self.experts = experts
        balance = Array(repeating: 0, count: layers)
        counts = Array(repeating: Array(repeating: 0, count: experts), count: layers)
    }

    mutating func add(terms: DDPMObjective.Terms, balance b: [Float], counts c: [[Int]], lr: Double, norm: Double, samples: Int) {
        steps += 1; self.samples += samples
        loss += terms.mean; mse += terms.meanMSE; vb += terms.meanVB
        for l in 0..<layers {
            balance[l] += Double(b[l])
            for e in 0..<experts { counts[l][e] += Double(c[l][e]) }
        }
        self.lr = lr; self.norm = norm
    }

    func record(step: Int, elapsed: Double, seconds: Double) -> TrainingLogRecord {
        let n = Double(max(steps, 1))
        var r = TrainingLogRecord(kind: "train", step: step, loss: loss / n, mse: mse / n, vb: vb / n, lr: lr, gradNorm: norm,
                                  samplesPerSecond: seconds > 0 ? Double(samples) / seconds : nil, elapsedSeconds: elapsed)
        if layers > 0 {
            let perLayer = balance.map { $0 / n }
            r.balance = perLayer.reduce(0, +)
            r.balancePerLayer = perLayer
            r.expertLoad = counts.map { row in let s = row.reduce(0, +); return row.map { s > 0 ? $0 / s : 0 } }
            let stats = counts.map { LoadStats(loads: $0) }
            r.balancedness = stats.map(\.balancedness)
            r.maxVio = stats.map(\.maxVio)
        }
        return r
    }
}

/// Appends JSON lines, flushed per record, so an interrupted run keeps its log.
final class LogWriter {
    let handle: FileHandle
    let encoder: JSONEncoder

    init(path: String) throws {
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: path) else { throw DiTError.io(path: path, reason: "cannot open for appending") }
        h.seekToEndOfFile()
        handle = h
        encoder = JSONEncoder(); encoder.outputFormatting = [.sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
    }

    func append(_ record: TrainingLogRecord) throws {
        var data = try encoder.encode(record)
        data.append(0x0A)
        handle.write(data)
    }

    deinit { try? handle.close() }
}

/// The config as JSON with upstream constructor argument names (what `DiTConfig.load(jsonFile:)` reads).
public func configJSON(_ c: DiTConfig) -> String {
    let encoder = JSONEncoder(); encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return String(decoding: (try? encoder.encode(c)) ?? Data("{}".utf8), as: UTF8.self)
}

func seconds(_ d: Duration) -> Double {
    let c = d.components
    return Double(c.seconds) + Double(c.attoseconds) * 1e-18
}
