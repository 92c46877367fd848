import DiT
import Foundation
import Tensor

/// A convolution's parameters: weight `[out, in, kh, kw]` and bias `[out]`, Float32 as PyTorch stores them.
public struct ConvParameters {
    public let shape: Conv2DShape
    public let weight: FloatBuffer
    public let bias: FloatBuffer
}

/// A GroupNorm's per-channel affine parameters (`[channels]` each).
public struct NormParameters {
    public let channels: Int
    public let weight: FloatBuffer
    public let bias: FloatBuffer
}

/// diffusers `ResnetBlock2D` without time embedding: norm1 → SiLU → conv1 (3×3, in → out) → norm2 → SiLU → conv2
/// (3×3, out → out), plus the input (through a 1×1 `conv_shortcut` when in ≠ out); output scale factor 1.
public struct ResnetParameters {
    public let inChannels: Int
    public let outChannels: Int
    public let norm1: NormParameters
    public let conv1: ConvParameters
    public let norm2: NormParameters
    public let conv2: ConvParameters
    public let shortcut: ConvParameters?
}

/// The mid block's single-head attention: GroupNorm, then q/k/v/out projections, each a `[C, C]` weight and `[C]`
/// bias (a `[C, C, 1, 1]` 1×1-conv layout is accepted and read as the same matrix).
public struct AttentionParameters {
    public let channels: Int
    public let norm: NormParameters
    public let q: (weight: FloatBuffer, bias: FloatBuffer)
    public let k: (weight: FloatBuffer, bias: FloatBuffer)
    public let v: (weight: FloatBuffer, bias: FloatBuffer)
    public let out: (weight: FloatBuffer, bias: FloatBuffer)
}

public struct UpBlockParameters {
    public let resnets: [ResnetParameters]
    /// Nearest 2× upsampling then this 3×3 conv; nil on the last (highest-resolution) block.
    public let upsampler: ConvParameters?
}

/// Every parameter of an AutoencoderKL decoder (plus `post_quant_conv`), under diffusers' state-dict names:
/// `post_quant_conv.*`, `decoder.conv_in.*`, `decoder.mid_block.resnets.{0,1}.*`, `decoder.mid_block.attentions.0.*`,
/// `decoder.up_blocks.{i}.resnets.{j}.*`, `decoder.up_blocks.{i}.upsamplers.0.conv.*`, `decoder.conv_norm_out.*`,
/// `decoder.conv_out.*`. The attention projections are read under the current names (`to_q`, `to_k`, `to_v`,
/// `to_out.0`) or the older ones that released files such as sd-vae-ft-mse still use (`query`, `key`, `value`,
/// `proj_attn`).
public final class VAEDecoderWeights {
    public let config: VAEConfig
    public let postQuantConv: ConvParameters?
    public let convIn: ConvParameters
    public let midResnets: [ResnetParameters]
    public let midAttention: AttentionParameters?
    public let upBlocks: [UpBlockParameters]
    public let normOut: NormParameters
    public let convOut: ConvParameters

    /// One tensor wanted by the builder: its name(s) (the first is the current diffusers name; later ones are
    /// accepted aliases) and shape(s) (the first is the canonical one).
    public struct Request {
        public let names: [String]
        public let shapes: [[Int]]
    }

    /// Builds the parameters in state-dict order, asking `source` for each tensor (values are Float32 in the
    /// canonical shape's row-major order).
    init(config c: VAEConfig, source: (Request) throws -> FloatBuffer) throws {
        config = c
        func tensor(_ names: [String], _ shapes: [[Int]]) throws -> FloatBuffer { try source(Request(names: names, shapes: shapes)) }
        func conv(_ p: String, _ shape: Conv2DShape) throws -> ConvParameters {
            ConvParameters(shape: shape, weight: try tensor(["\(p).weight"], [shape.weightShape]),
                           bias: try tensor(["\(p).bias"], [[shape.outChannels]]))
        }
        func conv3(_ p: String, _ i: Int, _ o: Int) throws -> ConvParameters {
            try conv(p, Conv2DShape(inChannels: i, outChannels: o, kernel: 3, stride: 1, padding: 1))
        }
        func norm(_ p: String, _ ch: Int) throws -> NormParameters {
            NormParameters(channels: ch, weight: try tensor(["\(p).weight"], [[ch]]), bias: try tensor(["\(p).bias"], [[ch]]))
        }
        func resnet(_ p: String, _ i: Int, _ o: Int) throws -> ResnetParameters {
            ResnetParameters(inChannels: i, outChannels: o, norm1: try norm("\(p).norm1", i), conv1: try conv3("\(p).conv1", i, o),
                             norm2: try norm("\(p).norm2", o), conv2: try conv3("\(p).conv2", o, o),
                             shortcut: i == o ? nil : try conv("\(p).conv_shortcut", Conv2DShape(inChannels: i, outChannels: o, kernel: 1)))
        }
        func projection(_ p: String, _ new: String, _ old: String, _ ch: Int) throws -> (weight: FloatBuffer, bias: FloatBuffer) {
            (try tensor(["\(p).\(new).weight", "\(p).\(old).weight"], [[ch, ch], [ch, ch, 1, 1]]),
             try tensor(["\(p).\(new).bias", "\(p).\(old).bias"], [[ch]]))
        }
        let lat = c.latentChannels, top = c.blockOutChannels.last!
        postQuantConv = c.usePostQuantConv ? try conv("post_quant_conv", Conv2DShape(inChannels: lat, outChannels: lat, kernel: 1)) : nil
        convIn = try conv3("decoder.conv_in", lat, top)
        var mid = [try resnet("decoder.mid_block.resnets.0", top, top)]
        if c.midBlockAttention {
            let p = "decoder.mid_block.attentions.0"
            midAttention = AttentionParameters(channels: top, norm: try norm("\(p).group_norm", top),
                                               q: try projection(p, "to_q", "query", top), k: try projection(p, "to_k", "key", top),
                                               v: try projection(p, "to_v", "value", top), out: try projection(p, "to_out.0", "proj_attn", top))
        } else {
            midAttention = nil
        }
        mid.append(try resnet("decoder.mid_block.resnets.1", top, top))
        midResnets = mid
        let reversed = Array(c.blockOutChannels.reversed())
        var blocks: [UpBlockParameters] = []
        var previous = top
        for (i, out) in reversed.enumerated() {
            var resnets: [ResnetParameters] = []
            for j in 0...c.layersPerBlock {
                resnets.append(try resnet("decoder.up_blocks.\(i).resnets.\(j)", j == 0 ? previous : out, out))
            }
            let up = i == reversed.count - 1 ? nil : try conv3("decoder.up_blocks.\(i).upsamplers.0.conv", out, out)
            blocks.append(UpBlockParameters(resnets: resnets, upsampler: up))
            previous = out
        }
        upBlocks = blocks
        normOut = try norm("decoder.conv_norm_out", c.blockOutChannels[0])
        convOut = try conv3("decoder.conv_out", c.blockOutChannels[0], c.outChannels)
    }

    /// Every tensor the decoder of `config` reads, in state-dict order (current names and canonical shapes).
    public static func expectedTensors(_ config: VAEConfig) -> [(name: String, shape: [Int])] {
        var out: [(String, [Int])] = []
        _ = try? VAEDecoderWeights(config: config) { r in out.append((r.names[0], r.shapes[0])); return FloatBuffer(count: 0) }
        return out
    }

    /// Seeded random parameters (convolutions and projections uniform in ±1/√fan-in, norm weights near 1, biases
    /// small): for benchmarks, where only the shapes matter.
    public convenience init(config: VAEConfig, seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        try! self.init(config: config) { r in
            let shape = r.shapes[0], n = shape.reduce(1, *)
            let b = FloatBuffer(count: n)
            let isNormWeight = shape.count == 1 && r.names[0].hasSuffix(".weight")
            let bound: Float = shape.count > 1 ? 1 / Float(shape.dropFirst().reduce(1, *)).squareRoot() : 0.1
            for i in 0..<n { b.pointer[i] = (isNormWeight ? 1 : 0) + bound * (2 * rng.nextUnitFloat() - 1) }
            return b
        }
    }

    /// Reads the decoder of `config` from a diffusers AutoencoderKL safetensors file (F32, F16, BF16 or F64; widened
    /// to Float32). Encoder and `quant_conv` tensors are ignored; a missing tensor, a wrong shape, or a `decoder.*` /
    /// `post_quant_conv.*` tensor this config does not use (e.g. `layers_per_block` too small) is an error naming the
    /// file, the key and the shapes.
    public convenience init(file: SafetensorsFile, config: VAEConfig) throws {
        var used = Set<String>()
        try self.init(config: config) { r in
            guard let name = r.names.first(where: { file[$0] != nil }), let e = file[name] else {
                // With aliases the message reads: missing tensor 'new name' or 'old name'.
                throw DiTError.missingTensor(path: file.path, key: r.names.joined(separator: "' or '"), expectedShape: r.shapes[0])
            }
            guard r.shapes.contains(e.shape) else { throw DiTError.shapeMismatch(path: file.path, key: name, expected: r.shapes[0], got: e.shape) }
            used.insert(name)
            return FloatBuffer(try file.floats(name))
        }
        for name in file.names where (name.hasPrefix("decoder.") || name.hasPrefix("post_quant_conv.")) && !used.contains(name) {
            throw DiTError.unexpectedTensor(path: file.path, key: name, shape: file[name]!.shape)
        }
    }

    /// Parameters in total (what `expectedTensors` lists).
    public var parameterCount: Int {
        VAEDecoderWeights.expectedTensors(config).reduce(0) { $0 + $1.shape.reduce(1, *) }
    }
}
