import Diffusion
import DiT
import Foundation
import Tensor

/// How a noisy image becomes the noise-level classifier's input (in the classifier's own units, see
/// `NoiseLevelClassifier`).
public enum NoiseClassifierInput: String, Sendable, Codable {
    /// The 64 pixel values as they are (at σ = 157 they are of order 157).
    case raw
    /// The image divided by its RMS r = √(mean y²), then log r: 65 values, all of order 1 at every σ. For pure noise
    /// y = σ·z, log r = log σ + O(1/√(2·64)), so the scale is one input away from the answer.
    case rmsNormalised = "rms-normalised"
    /// The 64 pixel values as they are, then log r: 65 values.
    case rawWithLogRMS = "raw+log-rms"

    public func width(pixels: Int) -> Int { self == .raw ? pixels : pixels + 1 }

    /// Writes the input of `batch` images y (`[batch, pixels]`) into `out` (`[batch, width]`).
    public func encode(_ y: UnsafePointer<Float>, batch: Int, pixels: Int, into out: UnsafeMutablePointer<Float>) {
        switch self {
        case .raw: out.update(from: y, count: batch * pixels)
        case .rmsNormalised, .rawWithLogRMS:
            let w = pixels + 1
            for b in 0..<batch {
                let yb = y + b * pixels, ob = out + b * w
                var s: Double = 0
                for i in 0..<pixels { s += Double(yb[i]) * Double(yb[i]) }
                // An exactly zero image (never produced by noise) gets r = 1e-12 instead of a division by zero.
                let r = max((s / Double(pixels)).squareRoot(), 1e-12)
                let inv: Float = self == .rmsNormalised ? Float(1 / r) : 1
                for i in 0..<pixels { ob[i] = yb[i] * inv }
                ob[pixels] = Float(Foundation.log(r))
            }
        }
    }
}

/// DLG's σ-step estimator for images: an `MLPClassifier` over L noise levels (index 0 = the largest σ), trained
/// with cross-entropy on the level index of x₀ + σ_k·z; at inference the MAP level (argmax of the logits).
///
/// Units. The classifier is trained in its own "model units" `modelLevels` (for the digits: [−1, 1] pixels, the
/// DiT's units, σ in the same units). A sampler working in other units x with y = a·x + b (`DataUnits`, the same
/// map the VP/RF adapters take) passes `units`; inputs are mapped to y before encoding and `levels` (the protocol's
/// level set, what DLG reads) is `modelLevels` divided by a, so σ_x = σ_y/a.
///
/// Use with DLG (the units must be the ones the sampler's denoiser adapter uses):
///
///     let estimator = try NoiseLevelClassifier.bundled(units: .native)   // sampler in [−1, 1] pixel units
///     let chains = DLGChains(chains: 200, estimator: estimator, context: context)
///
/// Not thread-safe (one workspace per instance); `inUnits(_:)` makes another instance over the same weights.
public final class NoiseLevelClassifier: NoiseLevelEstimator {
    public let network: MLPClassifier
    public let input: NoiseClassifierInput
    /// The level set in the classifier's own units.
    public let modelLevels: NoiseLevels
    /// Sampler units → model units.
    public let units: DataUnits
    /// The level set in sampler units (σ_k / units.scale), as DLG reads it.
    public let levels: NoiseLevels
    /// Pixels per image.
    public let dimension: Int

    private var capacity = 0
    private var mapped = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private var encoded = UnsafeMutablePointer<Float>.allocate(capacity: 1)

    public init(network: MLPClassifier, input: NoiseClassifierInput, levels: NoiseLevels, dimension: Int,
                units: DataUnits = .native) {
        precondition(network.classes == levels.count, "NoiseLevelClassifier: \(network.classes) logits for \(levels.count) levels")
        precondition(network.inputWidth == input.width(pixels: dimension),
                     "NoiseLevelClassifier: the network takes \(network.inputWidth) inputs, \(input.rawValue) of \(dimension) pixels gives \(input.width(pixels: dimension))")
        self.network = network
        self.input = input
        modelLevels = levels
        self.units = units
        self.levels = units.scale == 1 ? levels
            : NoiseLevels(sigmaMin: levels.sigmaMin / units.scale, sigmaMax: levels.sigmaMax / units.scale, count: levels.count)
        self.dimension = dimension
    }

    deinit { mapped.deallocate(); encoded.deallocate() }

    /// The same network seen from sampler units `units` (shares the weights; each instance has its own workspace).
    public func inUnits(_ units: DataUnits) -> NoiseLevelClassifier {
        NoiseLevelClassifier(network: network, input: input, levels: modelLevels, dimension: dimension, units: units)
    }

    /// The digits' level set in [−1, 1] pixel units: 1000 levels from σ_min = 0.02 to σ_max = σ_999 of the DDPM
    /// table (linear β 1e-4…0.02, σ_j = √(1/ᾱ_j − 1) ≈ 157.4), so every level lies inside the table's range
    /// [0.0100, 157.4] that a VP ε-model is trained on. σ_min = 0.02 is DMCMC's 0.01 in [0, 1] units.
    public static let digitsLevels = NoiseLevels(sigmaMin: 0.02, sigmaMax: DDPMTable().sigmas.last!, count: 1000)

    private func reserve(_ batch: Int) {
        guard batch > capacity else { return }
        mapped.deallocate(); encoded.deallocate()
        mapped = .allocate(capacity: batch * dimension)
        encoded = .allocate(capacity: batch * input.width(pixels: dimension))
        network.reserve(batch)
        capacity = batch
    }

    /// Logits `[batch, L]` of x (`[batch, dimension]`, sampler units); valid until the next call.
    public func logits(_ x: UnsafePointer<Float>, batch: Int) -> UnsafePointer<Float> {
        reserve(batch)
        let n = batch * dimension
        if units == .native {
            input.encode(x, batch: batch, pixels: dimension, into: encoded)
        } else {
            let a = Float(units.scale), b = Float(units.shift)
            for i in 0..<n { mapped[i] = a * x[i] + b }
            input.encode(mapped, batch: batch, pixels: dimension, into: encoded)
        }
        return network.forward(encoded, batch: batch)
    }

    /// The σ-step: argmax_k logit_k for each sample (0 = largest σ). No allocation once the batch size has been seen.
    public func mostLikelyLevel(_ x: UnsafePointer<Float>, batch: Int, into out: UnsafeMutablePointer<Int>) {
        let z = logits(x, batch: batch), c = levels.count
        for b in 0..<batch { out[b] = MLPClassifier.argmax(z + b * c, count: c) }
    }

    // MARK: Files

    /// Writes the weights (`layers.<i>.weight|bias`) with the input encoding, pixel count and level set
    /// (σ_min, σ_max, count, units) in the header metadata.
    public func save(to path: String, metadata: [String: String] = [:]) throws {
        var m = metadata
        m["input"] = input.rawValue
        m["pixels"] = String(dimension)
        m["sigma_min"] = "\(modelLevels.sigmaMin)"
        m["sigma_max"] = "\(modelLevels.sigmaMax)"
        m["levels"] = String(modelLevels.count)
        m["level_order"] = "k = 0..L-1, sigma_k = sigma_min*(sigma_max/sigma_min)^(1-k/L), index 0 = largest sigma"
        m["units"] = "[-1, 1] pixels (pixel/8 - 1 for the digits); sigma in the same units"
        try network.save(to: path, metadata: m)
    }

    /// Reads a file written by `save`; errors name the file and the metadata field.
    public static func load(from path: String, units: DataUnits = .native) throws -> NoiseLevelClassifier {
        let network = try MLPClassifier.load(from: path, name: "noise-classifier")
        let f = try SafetensorsFile(path: path)
        func field(_ k: String, _ expected: String) throws -> String {
            guard let v = f.metadata[k] else { throw DiTError.badInput(path: path, field: "__metadata__.\(k)", reason: "missing; expected \(expected)") }
            return v
        }
        let inputName = try field("input", "raw, rms-normalised or raw+log-rms")
        guard let input = NoiseClassifierInput(rawValue: inputName) else {
            throw DiTError.badInput(path: path, field: "__metadata__.input", reason: "'\(inputName)' is not raw, rms-normalised or raw+log-rms")
        }
        guard let pixels = Int(try field("pixels", "the pixel count")), pixels > 0,
              let lo = Double(try field("sigma_min", "a positive number")),
              let hi = Double(try field("sigma_max", "a number above sigma_min")),
              let count = Int(try field("levels", "the number of levels")), lo > 0, hi > lo, count >= 2 else {
            throw DiTError.badInput(path: path, field: "__metadata__", reason: "pixels, sigma_min, sigma_max, levels must be a positive count, 0 < sigma_min < sigma_max and ≥ 2 levels; got \(f.metadata)")
        }
        guard network.classes == count, network.inputWidth == input.width(pixels: pixels) else {
            throw DiTError.badInput(path: path, field: "__metadata__.widths", reason: "the network maps \(network.inputWidth) → \(network.classes); \(input.rawValue) input of \(pixels) pixels over \(count) levels needs \(input.width(pixels: pixels)) → \(count)")
        }
        return NoiseLevelClassifier(network: network, input: input, levels: NoiseLevels(sigmaMin: lo, sigmaMax: hi, count: count),
                                    dimension: pixels, units: units)
    }

    /// The classifier shipped with moebench for the digits (`Resources/models/noise-classifier.safetensors`).
    public static func bundled(units: DataUnits = .native) throws -> NoiseLevelClassifier {
        try load(from: try bundledModelPath("noise-classifier"), units: units)
    }

    /// The shipped classifier's training record and σ-recovery (its `noise-classifier.json`).
    public static func bundledSummary() throws -> ClassifierRuns.NoiseClassifierSummary {
        let path = (try bundledModelPath("noise-classifier") as NSString).deletingPathExtension + ".json"
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        do { return try d.decode(ClassifierRuns.NoiseClassifierSummary.self, from: Data(contentsOf: URL(fileURLWithPath: path))) }
        catch { throw DiTError.io(path: path, reason: "cannot read the classifier's record: \(error)") }
    }
}

/// Path of `Resources/models/<name>.safetensors` inside the build's resource bundle.
func bundledModelPath(_ name: String) throws -> String {
    guard let url = Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Resources/models") else {
        throw DiTError.io(path: "Resources/models/\(name).safetensors", reason: "the bundled model is missing from the build")
    }
    return url.path
}
