import DiT
import Foundation
import Tensor

/// torchvision's `BasicConv2d` (conv without bias → BatchNorm eps 0.001 in eval mode → ReLU) with the BatchNorm
/// folded into the conv at load: scale_o = γ_o / √(running_var_o + 0.001), W'[o, …] = W[o, …]·scale_o,
/// b'_o = β_o − running_mean_o·scale_o (folding in Float64, stored Float32). The forward is conv2d(W', b') + ReLU.
public struct FoldedConv {
    public let shape: Conv2DShape
    public let weight: FloatBuffer
    public let bias: FloatBuffer
}

/// The Inception-v3 layers pytorch-fid's `InceptionV3` runs up to pool3 (2048-d), under torchvision's state-dict names
/// as in pytorch-fid's released `pt_inception-2015-12-05-6726825d.pth`: `Conv2d_1a_3x3` … `Conv2d_4a_3x3`,
/// `Mixed_5b` … `Mixed_7c`, each `<layer>.<branch>.conv.weight` and `<layer>.<branch>.bn.{weight, bias,
/// running_mean, running_var}`. `fc.*` and `num_batches_tracked` are not needed and ignored.
public final class FIDInceptionWeights {
    /// The stem: 1a (3→32, 3×3 s2), 2a (32→32, 3×3), 2b (32→64, 3×3 p1), [max 3/2], 3b (64→80, 1×1), 4a (80→192, 3×3), [max 3/2].
    public let stem: [FoldedConv]
    /// Mixed_5b, 5c, 5d (FIDInceptionA), 6a (InceptionB), 6b–6e (FIDInceptionC), 7a (InceptionD), 7b (FIDInceptionE_1),
    /// 7c (FIDInceptionE_2), in order; each block's convs by branch name.
    public let blocks: [InceptionBlock]

    public struct InceptionBlock {
        public enum Kind: String, Sendable {
            /// 1×1 64 | 1×1 48 → 5×5 64 | 1×1 64 → 3×3 96 → 3×3 96 | avg 3/1/1 without padding → 1×1 pool_features.
            case a
            /// 3×3/2 384 | 1×1 64 → 3×3 96 → 3×3/2 96 | max 3/2.
            case b
            /// 1×1 192 | 1×1 c7 → 1×7 c7 → 7×1 192 | 1×1 c7 → 7×1 → 1×7 → 7×1 → 1×7 192 | avg 3/1/1 without padding → 1×1 192.
            case c
            /// 1×1 192 → 3×3/2 320 | 1×1 192 → 1×7 → 7×1 → 3×3/2 192 | max 3/2.
            case d
            /// 1×1 320 | 1×1 384 → (1×3 384, 3×1 384) | 1×1 448 → 3×3 384 → (1×3 384, 3×1 384) | pool 3/1/1 → 1×1 192;
            /// the pool is an average without padding in Mixed_7b (FIDInceptionE_1) and a max in Mixed_7c (E_2).
            case eAvg, eMax
        }
        public let name: String
        public let kind: Kind
        public let inChannels: Int
        public let outChannels: Int
        public let convs: [String: FoldedConv]
    }

    /// (branch name, in, out, kernel (h, w), stride, padding (h, w)) of every conv in a block.
    static func layout(_ kind: InceptionBlock.Kind, inChannels i: Int, poolFeatures: Int = 0, c7: Int = 0)
        -> [(String, Int, Int, (Int, Int), Int, (Int, Int))] {
        switch kind {
        case .a:
            return [("branch1x1", i, 64, (1, 1), 1, (0, 0)), ("branch5x5_1", i, 48, (1, 1), 1, (0, 0)),
                    ("branch5x5_2", 48, 64, (5, 5), 1, (2, 2)), ("branch3x3dbl_1", i, 64, (1, 1), 1, (0, 0)),
                    ("branch3x3dbl_2", 64, 96, (3, 3), 1, (1, 1)), ("branch3x3dbl_3", 96, 96, (3, 3), 1, (1, 1)),
                    ("branch_pool", i, poolFeatures, (1, 1), 1, (0, 0))]
        case .b:
            return [("branch3x3", i, 384, (3, 3), 2, (0, 0)), ("branch3x3dbl_1", i, 64, (1, 1), 1, (0, 0)),
                    ("branch3x3dbl_2", 64, 96, (3, 3), 1, (1, 1)), ("branch3x3dbl_3", 96, 96, (3, 3), 2, (0, 0))]
        case .c:
            return [("branch1x1", i, 192, (1, 1), 1, (0, 0)), ("branch7x7_1", i, c7, (1, 1), 1, (0, 0)),
                    ("branch7x7_2", c7, c7, (1, 7), 1, (0, 3)), ("branch7x7_3", c7, 192, (7, 1), 1, (3, 0)),
                    ("branch7x7dbl_1", i, c7, (1, 1), 1, (0, 0)), ("branch7x7dbl_2", c7, c7, (7, 1), 1, (3, 0)),
                    ("branch7x7dbl_3", c7, c7, (1, 7), 1, (0, 3)), ("branch7x7dbl_4", c7, c7, (7, 1), 1, (3, 0)),
                    ("branch7x7dbl_5", c7, 192, (1, 7), 1, (0, 3)), ("branch_pool", i, 192, (1, 1), 1, (0, 0))]
        case .d:
            return [("branch3x3_1", i, 192, (1, 1), 1, (0, 0)), ("branch3x3_2", 192, 320, (3, 3), 2, (0, 0)),
                    ("branch7x7x3_1", i, 192, (1, 1), 1, (0, 0)), ("branch7x7x3_2", 192, 192, (1, 7), 1, (0, 3)),
                    ("branch7x7x3_3", 192, 192, (7, 1), 1, (3, 0)), ("branch7x7x3_4", 192, 192, (3, 3), 2, (0, 0))]
        case .eAvg, .eMax:
            return [("branch1x1", i, 320, (1, 1), 1, (0, 0)), ("branch3x3_1", i, 384, (1, 1), 1, (0, 0)),
                    ("branch3x3_2a", 384, 384, (1, 3), 1, (0, 1)), ("branch3x3_2b", 384, 384, (3, 1), 1, (1, 0)),
                    ("branch3x3dbl_1", i, 448, (1, 1), 1, (0, 0)), ("branch3x3dbl_2", 448, 384, (3, 3), 1, (1, 1)),
                    ("branch3x3dbl_3a", 384, 384, (1, 3), 1, (0, 1)), ("branch3x3dbl_3b", 384, 384, (3, 1), 1, (1, 0)),
                    ("branch_pool", i, 192, (1, 1), 1, (0, 0))]
        }
    }

    /// (name, kind, in channels, pool_features, channels_7x7, out channels) of the eleven mixed blocks.
    static let mixed: [(String, InceptionBlock.Kind, Int, Int, Int, Int)] = [
        ("Mixed_5b", .a, 192, 32, 0, 256), ("Mixed_5c", .a, 256, 64, 0, 288), ("Mixed_5d", .a, 288, 64, 0, 288),
        ("Mixed_6a", .b, 288, 0, 0, 768), ("Mixed_6b", .c, 768, 0, 128, 768), ("Mixed_6c", .c, 768, 0, 160, 768),
        ("Mixed_6d", .c, 768, 0, 160, 768), ("Mixed_6e", .c, 768, 0, 192, 768), ("Mixed_7a", .d, 768, 0, 0, 1280),
        ("Mixed_7b", .eAvg, 1280, 0, 0, 2048), ("Mixed_7c", .eMax, 2048, 0, 0, 2048),
    ]

    static let stemLayout: [(String, Int, Int, Int, Int, Int)] = [  // name, in, out, kernel, stride, padding
        ("Conv2d_1a_3x3", 3, 32, 3, 2, 0), ("Conv2d_2a_3x3", 32, 32, 3, 1, 0), ("Conv2d_2b_3x3", 32, 64, 3, 1, 1),
        ("Conv2d_3b_1x1", 64, 80, 1, 1, 0), ("Conv2d_4a_3x3", 80, 192, 3, 1, 0),
    ]

    public static let bnEps = 0.001

    /// Builds and folds every conv, asking `source(name, shape)` for each tensor (Float32, row-major).
    init(source: (String, [Int]) throws -> [Float]) throws {
        func folded(_ prefix: String, _ shape: Conv2DShape) throws -> FoldedConv {
            let o = shape.outChannels
            let w = try source("\(prefix).conv.weight", shape.weightShape)
            let gamma = try source("\(prefix).bn.weight", [o]), beta = try source("\(prefix).bn.bias", [o])
            let mean = try source("\(prefix).bn.running_mean", [o]), variance = try source("\(prefix).bn.running_var", [o])
            let wb = FloatBuffer(count: shape.weightCount), bb = FloatBuffer(count: o)
            let k = shape.columnRows
            for c in 0..<o {
                let s = Double(gamma[c]) / (Double(variance[c]) + Self.bnEps).squareRoot()
                for j in 0..<k { wb.pointer[c * k + j] = Float(Double(w[c * k + j]) * s) }
                bb.pointer[c] = Float(Double(beta[c]) - Double(mean[c]) * s)
            }
            return FoldedConv(shape: shape, weight: wb, bias: bb)
        }
        stem = try Self.stemLayout.map { n, i, o, k, s, p in
            try folded(n, Conv2DShape(inChannels: i, outChannels: o, kernel: k, stride: s, padding: p))
        }
        blocks = try Self.mixed.map { name, kind, i, pool, c7, out in
            var convs: [String: FoldedConv] = [:]
            for (b, ci, co, k, s, p) in Self.layout(kind, inChannels: i, poolFeatures: pool, c7: c7) {
                convs[b] = try folded("\(name).\(b)", Conv2DShape(inChannels: ci, outChannels: co, kernel: k, stride: (s, s), padding: p))
            }
            return InceptionBlock(name: name, kind: kind, inChannels: i, outChannels: out, convs: convs)
        }
    }

    /// Every tensor the network reads (name and shape), in forward order.
    public static func expectedTensors() -> [(name: String, shape: [Int])] {
        var out: [(String, [Int])] = []
        _ = try? FIDInceptionWeights { name, shape in out.append((name, shape)); return [Float](repeating: 1, count: shape.reduce(1, *)) }
        return out
    }

    /// Seeded random parameters (He-uniform convs, BatchNorm near identity): for benchmarks, where only the shapes
    /// matter.
    public convenience init(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        try! self.init { name, shape in
            let n = shape.reduce(1, *)
            let bound: Float = name.hasSuffix(".conv.weight") ? (6 / Float(shape.dropFirst().reduce(1, *))).squareRoot() : 0.1
            let offset: Float = name.hasSuffix(".bn.weight") || name.hasSuffix(".bn.running_var") ? 1 : 0
            return (0..<n).map { _ in offset + bound * (2 * rng.nextUnitFloat() - 1) }
        }
    }

    /// Reads pytorch-fid's Inception weights converted to safetensors (`tools/convert_fid_inception.py`); F32, F16,
    /// BF16 or F64. A missing tensor or a wrong shape is an error naming the file, the key and the shapes.
    public convenience init(file: SafetensorsFile) throws {
        try self.init { name, shape in
            guard let e = file[name] else { throw DiTError.missingTensor(path: file.path, key: name, expectedShape: shape) }
            guard e.shape == shape else { throw DiTError.shapeMismatch(path: file.path, key: name, expected: shape, got: e.shape) }
            return try file.floats(name)
        }
    }
}
