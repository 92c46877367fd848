import Diffusion
import DiT
import Foundation
import Tensor

/// The two classifier runs of `moebench train` (`--noise-classifier`, `--feature-net`): train on the digits' train
/// split, evaluate on the held-out split, write the weights and a JSON summary into a directory.
public enum ClassifierRuns {
    public struct LevelSet: Codable, Sendable {
        public var count: Int
        public var sigmaMin: Double
        public var sigmaMax: Double
        public var units: String
        public var order: String
        public var sigmas: [Double]
    }

    public struct TrainingRecord: Codable, Sendable {
        public var steps: Int, batch: Int, lr: Double, warmup: Int, weightDecay: Double, seed: UInt64
        public var widths: [Int]
        public var activation: String
        public var finalLoss: Double
        public var seconds: Double
    }

    public struct NoiseClassifierSummary: Codable, Sendable {
        public var kind = "noise-level-classifier"
        public var command: String
        public var weights = "classifier.safetensors"
        public var input: String
        public var levels: LevelSet
        public var training: TrainingRecord
        public var sigmaRecoveryHeldOut: SigmaRecoveryReport
        public var sigmaRecoveryPureNoise: SigmaRecoveryReport
    }

    public struct FloorRecord: Codable, Sendable {
        public var sampleCount: Int
        public var report: DigitsFIDReport
    }

    public struct FeatureNetSummary: Codable, Sendable {
        public var kind = "digit-feature-net"
        public var command: String
        public var weights = "feature-net.safetensors"
        public var featureWidth: Int
        public var training: TrainingRecord
        public var heldOutAccuracy: Double
        public var trainAccuracy: Double
        /// Train-split real digits against the held-out reference at each sample count.
        public var floor: [FloorRecord]
        public var referenceKey: String
    }

    static func record(_ o: MLPTrainingOptions, _ net: MLPClassifier, loss: Double, seconds: Double) -> TrainingRecord {
        TrainingRecord(steps: o.steps, batch: o.batch, lr: o.lr, warmup: o.warmup, weightDecay: o.weightDecay, seed: o.seed,
                       widths: net.widths, activation: net.activation.rawValue, finalLoss: loss, seconds: seconds)
    }

    static func writeJSON<T: Encodable>(_ value: T, to url: URL) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        e.keyEncodingStrategy = .convertToSnakeCase
        do { try e.encode(value).write(to: url) } catch {
            throw DiTError.io(path: url.path, reason: "cannot write: \(error.localizedDescription)")
        }
    }

    /// Trains the noise-level classifier, reports its σ recovery on the held-out digits and on pure noise, writes
    /// `classifier.safetensors` and `classifier.json` into `directory`. `log` receives progress and the tables.
    public static func noiseClassifier(_ o: NoiseClassifierOptions, data: DigitsDataset, directory: String, command: String,
                                       log: (String) -> Void) throws -> NoiseClassifierSummary {
        let dir = URL(fileURLWithPath: directory)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let (train, heldOut) = data.split()
        let started = Date()
        let progress = LossProgress(steps: o.training.steps)
        let c = try NoiseClassifierTraining.train(o, on: train) { progress.record(step: $0, loss: $1, log: log) }
        let last = progress.last
        let seconds = Date().timeIntervalSince(started)
        let held = NoiseClassifierTraining.sigmaRecovery(c, images: heldOut, draws: 3, seed: 1)
        let pure = NoiseClassifierTraining.sigmaRecovery(c, images: nil, draws: 3, seed: 2)
        log(held.table); log(pure.table)
        let L = o.levels
        let summary = NoiseClassifierSummary(
            command: command, input: o.input.rawValue,
            levels: LevelSet(count: L.count, sigmaMin: L.sigmaMin, sigmaMax: L.sigmaMax,
                             units: "[-1, 1] pixels (pixel/8 - 1); a sampler in units x with y = a*x + b divides sigma by a",
                             order: "sigma_k = sigma_min*(sigma_max/sigma_min)^(1-k/count), k = 0..count-1; index 0 is the largest sigma",
                             sigmas: L.sigmas),
            training: record(o.training, c.network, loss: last, seconds: seconds),
            sigmaRecoveryHeldOut: held, sigmaRecoveryPureNoise: pure)
        try c.save(to: dir.appendingPathComponent("classifier.safetensors").path,
                   metadata: ["command": command, "seed": String(o.training.seed), "steps": String(o.training.steps)])
        try writeJSON(summary, to: dir.appendingPathComponent("classifier.json"))
        return summary
    }

    /// Trains the digit feature net, reports held-out accuracy and the FID-digits floor (train vs held-out real
    /// digits) at `floorCounts`, writes `feature-net.safetensors` and `feature-net.json` into `directory`.
    public static func featureNet(_ o: DigitFeatureNet.Options, data: DigitsDataset, directory: String, command: String,
                                  floorCounts: [Int] = [300, 1000], log: (String) -> Void) throws -> FeatureNetSummary {
        let dir = URL(fileURLWithPath: directory)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let (train, heldOut) = data.split()
        let started = Date()
        let progress = LossProgress(steps: o.training.steps)
        let net = try DigitFeatureNet.train(o, on: train) { progress.record(step: $0, loss: $1, log: log) }
        let last = progress.last
        let seconds = Date().timeIntervalSince(started)
        let acc = DigitFeatureNet.accuracy(net, on: heldOut), trainAcc = DigitFeatureNet.accuracy(net, on: train)
        log(String(format: "held-out accuracy %.4f (%d digits), train accuracy %.4f", acc, heldOut.count, trainAcc))
        let fid = try DigitsFID(featureNet: net, referenceImages: heldOut.pixels, cacheDirectory: nil)
        var floors: [FloorRecord] = []
        for n in floorCounts {
            let r = try fid.floor(train: train, count: n)
            floors.append(FloorRecord(sampleCount: n, report: r))
            log(String(format: "floor at n = %d (train vs held-out real digits): FID-digits %.4f [%.4f, %.4f], pixel FD %.4f [%.4f, %.4f]",
                       n, r.fidDigits.value, r.fidDigits.lower, r.fidDigits.upper, r.pixelFD.value, r.pixelFD.lower, r.pixelFD.upper))
        }
        let summary = FeatureNetSummary(command: command, featureWidth: net.featureWidth,
                                        training: record(o.training, net, loss: last, seconds: seconds),
                                        heldOutAccuracy: acc, trainAccuracy: trainAcc, floor: floors, referenceKey: fid.referenceKey)
        try net.save(to: dir.appendingPathComponent("feature-net.safetensors").path,
                     metadata: ["command": command, "seed": String(o.training.seed), "steps": String(o.training.steps),
                                "held_out_accuracy": String(format: "%.4f", acc),
                                "features": "activations of the last hidden layer"])
        try writeJSON(summary, to: dir.appendingPathComponent("feature-net.json"))
        return summary
    }
}

/// Logs the mean cross-entropy of every 250 steps (and of the last step) of a classifier's training.
final class LossProgress {
    let steps: Int
    private var window: [Double] = []
    private(set) var last = 0.0

    init(steps: Int) { self.steps = steps }

    func record(step: Int, loss: Double, log: (String) -> Void) {
        window.append(loss); last = loss
        if step % 250 == 0 || step == steps {
            log(String(format: "step %d/%d  cross-entropy %.4f (mean of the last %d)", step, steps,
                       window.reduce(0, +) / Double(window.count), window.count))
            window.removeAll(keepingCapacity: true)
        }
    }
}
