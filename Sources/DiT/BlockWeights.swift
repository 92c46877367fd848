import Tensor

/// The parameters of one transformer block, resolved once from `DiTWeights` (upstream state-dict key names).
struct BlockWeights {
    struct AffineNorm { let weight: UnsafePointer<Float>; let bias: UnsafePointer<Float> }
    struct DenseMLP { let fc1: WeightMatrix; let fc1Bias: UnsafePointer<Float>; let fc2: WeightMatrix; let fc2Bias: UnsafePointer<Float> }

    let ada: WeightMatrix
    let adaBias: UnsafePointer<Float>
    let qkv: WeightMatrix
    let qkvBias: UnsafePointer<Float>
    let proj: WeightMatrix
    let projBias: UnsafePointer<Float>
    /// Flash layout only: per-head q/k LayerNorm parameters `[hd]`.
    let qNorm: AffineNorm?
    let kNorm: AffineNorm?
    let moe: MoEWeights?
    let mlp: DenseMLP?

    init(_ w: DiTWeights, layer i: Int) {
        let b = "blocks.\(i)."
        ada = w.matrix(b + "adaLN_modulation.1.weight"); adaBias = w.vector(b + "adaLN_modulation.1.bias")
        let c = w.config
        let (q, p) = c.useFlashAttn ? ("attn.Wqkv", "attn.out_proj") : ("attn.qkv", "attn.proj")
        qkv = w.matrix(b + q + ".weight"); qkvBias = w.vector(b + q + ".bias")
        proj = w.matrix(b + p + ".weight"); projBias = w.vector(b + p + ".bias")
        if c.useFlashAttn {
            qNorm = AffineNorm(weight: w.vector(b + "attn.q_norm.weight"), bias: w.vector(b + "attn.q_norm.bias"))
            kNorm = AffineNorm(weight: w.vector(b + "attn.k_norm.weight"), bias: w.vector(b + "attn.k_norm.bias"))
        } else {
            qNorm = nil; kNorm = nil
        }
        if c.dense {
            moe = nil
            mlp = DenseMLP(fc1: w.matrix(b + "mlp.fc1.weight"), fc1Bias: w.vector(b + "mlp.fc1.bias"),
                           fc2: w.matrix(b + "mlp.fc2.weight"), fc2Bias: w.vector(b + "mlp.fc2.bias"))
        } else {
            mlp = nil
            let s = c.hasSharedExpert ? w.sharedExpert(layer: i) : nil
            moe = MoEWeights(gate: w.matrix(b + "moe.gate.weight"), shared: s.map { SwiGLUExpert(gateUp: $0.gateUp, down: $0.down) })
        }
    }
}

struct MoEWeights {
    /// `moe.gate.weight` `[E, D]`, no bias.
    let gate: WeightMatrix
    /// nil when the config has no shared expert (`n_shared_experts = 0`).
    let shared: SwiGLUExpert?
}
