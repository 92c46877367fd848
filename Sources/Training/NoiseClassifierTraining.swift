import Diffusion
import DiT
import Foundation
import Metrics
import Tensor

/// Settings of the noise-level classifier's training.
public struct NoiseClassifierOptions: Sendable, Equatable {
    public var training: MLPTrainingOptions
    /// Hidden widths of the MLP (input and output widths follow from `input` and the level count).
    public var hidden: [Int] = [256, 64]
    public var activation: MLPActivation = .relu
    public var input: NoiseClassifierInput = .rmsNormalised
    public var levels: NoiseLevels = NoiseLevelClassifier.digitsLevels

    public init() {
        training = MLPTrainingOptions()
        training.steps = 20000; training.batch = 256; training.lr = 5e-3; training.warmup = 100
    }
}

/// |log σ̂ − log σ| over the levels whose σ lies in [lower, upper) (model units).
public struct SigmaRecoveryBand: Codable, Sendable, Equatable {
    public var lower: Double
    public var upper: Double
    /// Number of (level, draw) pairs evaluated in the band.
    public var count: Int
    public var median: Double
    public var mean: Double
    public var p90: Double
}

/// σ-recovery of a noise-level classifier on one kind of input.
public struct SigmaRecoveryReport: Codable, Sendable, Equatable {
    /// "held-out digits" or "pure noise (x0 = 0)".
    public var source: String
    /// Draws per level.
    public var drawsPerLevel: Int
    public var bands: [SigmaRecoveryBand]
    /// Median over every level and draw.
    public var median: Double

    /// A fixed-width table: band, count, median, mean, p90.
    public var table: String {
        var s = "σ-recovery on \(source) (\(drawsPerLevel) draws per level), |log σ̂ − log σ|:\n"
        s += "  σ band ([−1,1] units)    n   median    mean     p90\n"
        for b in bands {
            s += String(format: "  [%7.3f, %7.3f)  %5d   %6.3f  %6.3f  %6.3f\n", b.lower, b.upper, b.count, b.median, b.mean, b.p90)
        }
        s += String(format: "  all                  %6d   %6.3f\n", bands.reduce(0) { $0 + $1.count }, median)
        return s
    }
}

public enum NoiseClassifierTraining {
    /// Band edges in [−1, 1] pixel units; the last band is closed at σ_max.
    public static let bandEdges: [Double] = [0.02, 0.1, 0.5, 2, 10, 50]

    /// Trains a classifier on `train`: each example is a training digit x₀ drawn uniformly, a level k drawn
    /// uniformly, y = x₀ + σ_k·z with fresh z; cross-entropy on k. Seeded by `options.training.seed`.
    public static func train(_ options: NoiseClassifierOptions, on train: DigitsDataset,
                             onStep: (Int, Double) -> Void = { _, _ in }) throws -> NoiseLevelClassifier {
        let pixels = DigitsDataset.imageSize, levels = options.levels
        let widths = [options.input.width(pixels: pixels)] + options.hidden + [levels.count]
        let net = MLPClassifier(widths: widths, activation: options.activation, name: "noise-classifier",
                                seed: options.training.seed)
        let batch = options.training.batch
        var rng = Xoshiro256(seed: options.training.seed ^ 0x6E6F_6973_65)  // "noise"
        let noise = SeededNormalNoise(seed: options.training.seed ^ 0x7A)
        let y = UnsafeMutablePointer<Float>.allocate(capacity: batch * pixels)
        defer { y.deallocate() }
        let sig = levels.sigmas.map(Float.init)
        try train.pixels.withUnsafeBufferPointer { data in
            try net.train(options.training, makeBatch: { _, inputs, labels in
                noise.fillNormal(y, count: batch * pixels)
                for b in 0..<batch {
                    let i = Int(rng.next() % UInt64(train.count)), k = Int(rng.next() % UInt64(levels.count))
                    let s = sig[k], x0 = data.baseAddress! + i * pixels, yb = y + b * pixels
                    for j in 0..<pixels { yb[j] = x0[j] + s * yb[j] }
                    labels[b] = Int32(k)
                }
                options.input.encode(y, batch: batch, pixels: pixels, into: inputs)
            }, onStep: onStep)
        }
        return NoiseLevelClassifier(network: net, input: options.input, levels: levels, dimension: pixels)
    }

    /// σ-recovery by level band: every level k gets `draws` inputs x₀ + σ_k·z (model units) with x₀ the images of
    /// `images` in turn, or x₀ = 0 when `images` is nil (pure noise); σ̂ is the MAP level's σ. Seeded.
    public static func sigmaRecovery(_ c: NoiseLevelClassifier, images: DigitsDataset?, draws: Int = 3,
                                     seed: UInt64 = 1) -> SigmaRecoveryReport {
        let model = c.units == .native ? c : c.inUnits(.native)
        let levels = model.modelLevels, d = model.dimension, L = levels.count
        let noise = SeededNormalNoise(seed: seed)
        let chunk = 500
        let x = UnsafeMutablePointer<Float>.allocate(capacity: chunk * d)
        let idx = UnsafeMutablePointer<Int>.allocate(capacity: chunk)
        defer { x.deallocate(); idx.deallocate() }
        var errors = [Double](repeating: 0, count: L * draws), truth = [Int](repeating: 0, count: L * draws)
        var done = 0
        while done < L * draws {
            let n = min(chunk, L * draws - done)
            noise.fillNormal(x, count: n * d)
            for r in 0..<n {
                let j = done + r, k = j / draws, s = Float(levels[k])
                truth[j] = k
                let xr = x + r * d
                if let images {
                    let i = j % images.count
                    for p in 0..<d { xr[p] = images.pixels[i * d + p] + s * xr[p] }
                } else {
                    for p in 0..<d { xr[p] = s * xr[p] }
                }
            }
            model.mostLikelyLevel(x, batch: n, into: idx)
            for r in 0..<n { errors[done + r] = abs(Foundation.log(levels[idx[r]]) - Foundation.log(levels[truth[done + r]])) }
            done += n
        }
        var bands: [SigmaRecoveryBand] = []
        let edges = bandEdges + [levels.sigmaMax]
        for e in 0..<(edges.count - 1) {
            let lo = edges[e], hi = edges[e + 1], last = e == edges.count - 2
            let sel = (0..<errors.count).filter { let s = levels[truth[$0]]; return s >= lo && (s < hi || (last && s <= hi)) }.map { errors[$0] }
            bands.append(SigmaRecoveryBand(lower: lo, upper: hi, count: sel.count, median: Metrics.quantile(sel, 0.5),
                                           mean: sel.reduce(0, +) / Double(max(sel.count, 1)), p90: Metrics.quantile(sel, 0.9)))
        }
        return SigmaRecoveryReport(source: images == nil ? "pure noise (x0 = 0)" : "held-out digits", drawsPerLevel: draws,
                                   bands: bands, median: Metrics.quantile(errors, 0.5))
    }
}
