import DiT
import Foundation

/// The decoder half of a diffusers `AutoencoderKL` config: what `VAEDecoder` needs to know to build the network.
///
/// The decoder, from latent `[latentChannels, h, w]` to image `[outChannels, 8h, 8w]` when there are 4 levels (a
/// factor 2 per upsampler, `blockOutChannels.count − 1` upsamplers):
///   post_quant_conv (1×1, latent → latent; absent when `usePostQuantConv` is false)
///   conv_in (3×3, latent → C_top = blockOutChannels.last)
///   mid block: resnet, single-head attention over the pixels (absent when `midBlockAttention` is false), resnet
///   up blocks i = 0 … n−1, channels reversed(blockOutChannels)[i]: `layersPerBlock + 1` resnets, then (not on the
///     last block) nearest 2× upsampling and a 3×3 conv
///   GroupNorm, SiLU, conv_out (3×3, blockOutChannels[0] → outChannels)
/// Every GroupNorm has `normGroups` groups and eps 1e-6 (diffusers' `resnet_eps` for the decoder).
public struct VAEConfig: Equatable, Sendable {
    public var blockOutChannels: [Int]
    public var layersPerBlock: Int
    public var latentChannels: Int
    public var outChannels: Int
    public var normGroups: Int
    /// The latent scale of training: latent = posterior sample · scalingFactor, so decoding takes latent / scalingFactor.
    public var scalingFactor: Float
    public var usePostQuantConv: Bool
    public var midBlockAttention: Bool
    public static let groupNormEps: Float = 1e-6

    public init(blockOutChannels: [Int], layersPerBlock: Int, latentChannels: Int = 4, outChannels: Int = 3,
                normGroups: Int = 32, scalingFactor: Float = 0.18215, usePostQuantConv: Bool = true,
                midBlockAttention: Bool = true) {
        self.blockOutChannels = blockOutChannels
        self.layersPerBlock = layersPerBlock
        self.latentChannels = latentChannels
        self.outChannels = outChannels
        self.normGroups = normGroups
        self.scalingFactor = scalingFactor
        self.usePostQuantConv = usePostQuantConv
        self.midBlockAttention = midBlockAttention
    }

    /// `stabilityai/sd-vae-ft-mse` and `sd-vae-ft-ema` (the VAE of DiT and DiT-MoE): 4 levels 128/256/512/512,
    /// 2 layers per block (3 resnets per decoder up block), 32 groups, 4 latent channels, scale 0.18215.
    public static let sdVAE = VAEConfig(blockOutChannels: [128, 256, 512, 512], layersPerBlock: 2)

    /// Built-in names accepted by `named`.
    public static let builtIns: [String: VAEConfig] = ["sd-vae-ft-mse": sdVAE, "sd-vae-ft-ema": sdVAE, "sd-vae": sdVAE]

    /// A built-in name, or a path to a diffusers `config.json` (a directory holding one is accepted too).
    public static func named(_ nameOrPath: String) throws -> VAEConfig {
        if let c = builtIns[nameOrPath.lowercased()] { return c }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: nameOrPath, isDirectory: &isDir) else {
            throw DiTError.unknownConfig(name: nameOrPath, hint: "VAE configs: \(builtIns.keys.sorted().joined(separator: ", ")), or a diffusers config.json")
        }
        return try load(path: isDir.boolValue ? (nameOrPath as NSString).appendingPathComponent("config.json") : nameOrPath)
    }

    /// Reads a diffusers `AutoencoderKL` `config.json`. Fields the decoder does not use (encoder blocks,
    /// `sample_size`, `force_upcast`, …) are ignored; `up_block_types` must all be `UpDecoderBlock2D`.
    public static func load(path: String) throws -> VAEConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DiTError.io(path: path, reason: "cannot read the VAE config")
        }
        guard case let .object(o)? = try? JSONDecoder().decode(JSONValue.self, from: data) else {
            throw DiTError.badConfig(source: path, field: "(file)", expected: "a JSON object", got: "something else")
        }
        func int(_ key: String, default d: Int? = nil) throws -> Int {
            guard let v = o[key] else {
                if let d { return d }
                throw DiTError.badConfig(source: path, field: key, expected: "an integer", got: "nothing")
            }
            guard case let .number(x) = v, x == x.rounded(), x > 0, x < 1e6 else {
                throw DiTError.badConfig(source: path, field: key, expected: "a positive integer", got: "\(v)")
            }
            return Int(x)
        }
        func bool(_ key: String, default d: Bool) throws -> Bool {
            guard let v = o[key], v != .null else { return d }
            guard case let .bool(b) = v else { throw DiTError.badConfig(source: path, field: key, expected: "true or false", got: "\(v)") }
            return b
        }
        if let cls = o["_class_name"], case let .string(name) = cls, name != "AutoencoderKL" {
            throw DiTError.badConfig(source: path, field: "_class_name", expected: "AutoencoderKL", got: name)
        }
        guard case let .array(blocks)? = o["block_out_channels"], !blocks.isEmpty else {
            throw DiTError.badConfig(source: path, field: "block_out_channels", expected: "a non-empty list of channel counts", got: "\(o["block_out_channels"].map { "\($0)" } ?? "nothing")")
        }
        let channels = try blocks.map { v -> Int in
            guard case let .number(x) = v, x == x.rounded(), x > 0, x < 1e5 else {
                throw DiTError.badConfig(source: path, field: "block_out_channels", expected: "positive integers", got: "\(v)")
            }
            return Int(x)
        }
        if case let .array(types)? = o["up_block_types"] {
            for t in types where t != .string("UpDecoderBlock2D") {
                throw DiTError.badConfig(source: path, field: "up_block_types", expected: "UpDecoderBlock2D only", got: "\(t)")
            }
            guard types.count == channels.count else {
                throw DiTError.badConfig(source: path, field: "up_block_types", expected: "\(channels.count) entries (one per block_out_channels)", got: "\(types.count)")
            }
        }
        if let act = o["act_fn"], act != .string("silu") {
            throw DiTError.badConfig(source: path, field: "act_fn", expected: "\"silu\"", got: "\(act)")
        }
        var scale: Float = 0.18215
        if let s = o["scaling_factor"] {
            guard case let .number(x) = s, x > 0 else { throw DiTError.badConfig(source: path, field: "scaling_factor", expected: "a positive number", got: "\(s)") }
            scale = Float(x)
        }
        let c = VAEConfig(blockOutChannels: channels, layersPerBlock: try int("layers_per_block", default: 1),
                          latentChannels: try int("latent_channels", default: 4), outChannels: try int("out_channels", default: 3),
                          normGroups: try int("norm_num_groups", default: 32), scalingFactor: scale,
                          usePostQuantConv: try bool("use_post_quant_conv", default: true),
                          midBlockAttention: try bool("mid_block_add_attention", default: true))
        for ch in channels where ch % c.normGroups != 0 {
            throw DiTError.badConfig(source: path, field: "norm_num_groups", expected: "a divisor of every block_out_channels entry \(channels)", got: "\(c.normGroups)")
        }
        return c
    }
}
