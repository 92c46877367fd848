// Built-in model names resolve through the engine's own parser (`DiTConfig.named`), so a profile accepts exactly
// the names `moebench forward --config` accepts. This file only applies the profile's overrides (image size,
// depth) and maps a config onto the cost model's plain shape.
import DiT
import Metrics

public enum BuiltinModels {
    /// Names listed in `--help` and in profile errors.
    public static let examples = DiTConfig.examples

    /// The config of a built-in name at `imageSize` pixels (latent side imageSize/8) with an optional depth
    /// override (for small test runs), or nil if the name is not a built-in.
    public static func config(_ name: String, imageSize: Int = 256, depth: Int? = nil) -> DiTConfig? {
        if var d = DiTConfig.digits[name] {  // 8×8 pixels; the image size does not apply
            if let depth { d.depth = depth }
            return d
        }
        guard imageSize > 0, imageSize % 8 == 0, var c = try? DiTConfig.named(name) else { return nil }
        c.inputSize = imageSize / 8
        if let depth { c.depth = depth }
        return (try? c.validate(source: name)) == nil ? nil : c
    }

    public static func shape(_ name: String, imageSize: Int = 256, depth: Int? = nil) -> ModelShape? {
        config(name, imageSize: imageSize, depth: depth).map(ModelShape.init)
    }
}

extension ModelShape {
    /// The cost-model shape of an engine config.
    public init(_ c: DiTConfig) {
        self.init(depth: c.depth, hidden: c.hiddenSize, heads: c.numHeads, patchSize: c.patchSize, inputSize: c.inputSize,
                  inChannels: c.inChannels, numClasses: c.numClasses, experts: c.dense ? 0 : c.numExperts,
                  topK: c.dense ? 0 : c.numExpertsPerTok, sharedExperts: c.sharedHidden / c.hiddenSize,
                  mlpRatio: c.expertHidden / c.hiddenSize,
                  flashLayout: c.useFlashAttn, learnSigma: c.learnSigma)
    }
}
