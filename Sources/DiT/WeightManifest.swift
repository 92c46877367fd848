/// The upstream state-dict keys and shapes of a config (as `models.py` names its modules). Everything the loader
/// accepts, requires and checks comes from here.
public struct TensorSpec: Equatable, Sendable {
    public let key: String
    public let shape: [Int]
    /// Routed expert tensor: (layer, expert); nil for everything else.
    public let expert: (layer: Int, expert: Int)?

    public init(key: String, shape: [Int], expert: (layer: Int, expert: Int)? = nil) {
        self.key = key; self.shape = shape; self.expert = expert
    }

    public static func == (a: TensorSpec, b: TensorSpec) -> Bool { a.key == b.key && a.shape == b.shape }
}

extension DiTConfig {
    /// All parameter tensors of the model, in a stable order.
    public var tensorSpecs: [TensorSpec] {
        let d = hiddenSize, p = patchSize
        var specs: [TensorSpec] = []
        func add(_ key: String, _ shape: [Int], expert: (Int, Int)? = nil) {
            specs.append(TensorSpec(key: key, shape: shape, expert: expert.map { (layer: $0.0, expert: $0.1) }))
        }
        add("x_embedder.proj.weight", [d, inChannels, p, p])
        add("x_embedder.proj.bias", [d])
        add("pos_embed", [1, tokens, d])
        add("t_embedder.mlp.0.weight", [d, TimestepEmbedderShape.frequencyDim])
        add("t_embedder.mlp.0.bias", [d])
        add("t_embedder.mlp.2.weight", [d, d])
        add("t_embedder.mlp.2.bias", [d])
        add("y_embedder.embedding_table.weight", [labelRows, d])
        for i in 0..<depth {
            let b = "blocks.\(i)."
            add(b + "adaLN_modulation.1.weight", [6 * d, d])
            add(b + "adaLN_modulation.1.bias", [6 * d])
            if useFlashAttn {
                add(b + "attn.Wqkv.weight", [3 * d, d]); add(b + "attn.Wqkv.bias", [3 * d])
                add(b + "attn.out_proj.weight", [d, d]); add(b + "attn.out_proj.bias", [d])
                for n in ["q_norm", "k_norm"] {
                    add(b + "attn.\(n).weight", [headDim]); add(b + "attn.\(n).bias", [headDim])
                }
            } else {
                add(b + "attn.qkv.weight", [3 * d, d]); add(b + "attn.qkv.bias", [3 * d])
                add(b + "attn.proj.weight", [d, d]); add(b + "attn.proj.bias", [d])
            }
            if dense {
                add(b + "mlp.fc1.weight", [expertHidden, d]); add(b + "mlp.fc1.bias", [expertHidden])
                add(b + "mlp.fc2.weight", [d, expertHidden]); add(b + "mlp.fc2.bias", [d])
            } else {
                add(b + "moe.gate.weight", [numExperts, d])
                for e in 0..<numExperts {
                    let x = b + "moe.experts.\(e)."
                    add(x + "gate_proj.weight", [expertHidden, d], expert: (i, e))
                    add(x + "up_proj.weight", [expertHidden, d], expert: (i, e))
                    add(x + "down_proj.weight", [d, expertHidden], expert: (i, e))
                }
                if hasSharedExpert {
                    let s = b + "moe.shared_experts."
                    add(s + "gate_proj.weight", [sharedHidden, d]); add(s + "up_proj.weight", [sharedHidden, d])
                    add(s + "down_proj.weight", [d, sharedHidden])
                }
            }
        }
        add("final_layer.adaLN_modulation.1.weight", [2 * d, d])
        add("final_layer.adaLN_modulation.1.bias", [2 * d])
        add("final_layer.linear.weight", [finalVector, d])
        add("final_layer.linear.bias", [finalVector])
        return specs
    }
}

public enum TimestepEmbedderShape {
    /// Width of the sinusoidal timestep features fed to `t_embedder.mlp.0` (fixed at 256 upstream).
    public static let frequencyDim = 256
}
