import DiT
import Diffusion
import Tensor

/// Upstream's `initialize_weights` for a model about to be trained (seeded):
/// - every `nn.Linear` weight (attention, experts, shared expert, dense MLP, final linear before zeroing) Xavier
///   uniform, bound √(6/(fan_in + fan_out)), biases 0; the patch-embed conv the same on its `[D, C·p·p]` view;
/// - `pos_embed` the fixed 2-D sin-cos table; label table and both timestep-MLP weights normal(0, 0.02);
/// - every adaLN modulation (blocks and final layer) and the final linear zero (adaLN-Zero: the untrained model
///   outputs 0);
/// - the MoE gate Kaiming-uniform with a = √5, i.e. uniform(±1/√D) (`MoEGate.reset_parameters`);
/// - q/k LayerNorm weight 1, bias 0.
public enum UpstreamInit {
    public static func fill(_ p: ParameterSet, seed: UInt64) {
        let c = p.config
        var rng = Xoshiro256(seed: seed ^ 0x696E_6974)  // "init"
        func uniform(_ key: String, bound: Double) {
            let n = p.specs.first { $0.key == key }!.shape.reduce(1, *), x = p[key]
            for i in 0..<n { x[i] = Float((2 * Double(rng.next() >> 11) / Double(1 << 53) - 1) * bound) }
        }
        func normal(_ key: String, std: Double) {
            let n = p.specs.first { $0.key == key }!.shape.reduce(1, *), x = p[key]
            for i in 0..<n { x[i] = Float(std * rng.normal()) }
        }
        p.zero()
        for s in p.specs {
            let key = s.key
            if key == "pos_embed" {
                let table = positionEmbedding2D(dim: c.hiddenSize, grid: c.grid)
                table.withUnsafeBufferPointer { p[key].update(from: $0.baseAddress!, count: table.count) }
            } else if key.hasSuffix("norm.weight") {
                p[key].update(repeating: 1, count: s.shape[0])
            } else if key.contains("adaLN_modulation") || key.hasPrefix("final_layer.linear") || s.shape.count == 1 {
                continue  // zero
            } else if key == "y_embedder.embedding_table.weight" || key.hasPrefix("t_embedder.mlp.") {
                normal(key, std: 0.02)
            } else if key.hasSuffix("moe.gate.weight") {
                uniform(key, bound: 1 / Double(s.shape[1]).squareRoot())
            } else {
                let fanOut = s.shape[0], fanIn = s.shape.dropFirst().reduce(1, *)
                uniform(key, bound: (6 / Double(fanIn + fanOut)).squareRoot())
            }
        }
    }
}
