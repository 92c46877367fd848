// Analytic parameter counts and FLOPs of DiT-MoE and dense DiT, counted from the modules of upstream `models.py`
// (they reproduce DiT-MoE Table 1, arXiv 2407.11633, after its rounding). The formulas live here and only here.
//
// Notation: L depth, D hidden, p patch, C in_channels, T = (inputSize/p)² tokens, E routed experts, K top-k,
// hd = D/heads. Routed experts are SwiGLU with intermediate mlpRatio·D (no bias, 3 matrices); the shared expert is
// one SwiGLU with intermediate sharedExperts·D; learn_sigma gives C_out = 2C; the label table has numClasses + 1
// rows (the CFG null class).
//
// Parameters per block:
//   attention 4D² + 4D (+ 4·hd for the flash layout's q/k LayerNorms), adaLN 6D² + 6D,
//   MoE: E·3·r·D² routed + 3·s·D² shared + E·D gate (r = mlpRatio, s = sharedExperts);
//   dense MLP (timm Mlp, GELU): 2·r·D² + r·D + D.
// Non-block: patch embed C·p²·D + D, pos_embed T·D, timestep embedder 256·D + D + D² + D, label table (classes+1)·D,
//   final layer 2D² + 2D + p²·C_out·D + p²·C_out.
// Activated parameters: K in place of E for the routed experts (the gate stays E·D).
//
// MACs per forward of one image (all Linear/Conv layers; elementwise ops, softmax and norms ignored):
//   per block: T·(4D² + K·3·r·D² + 3·s·D² + E·D) + 6D²   (MoE)      T·(4D² + 2·r·D²) + 6D²   (dense)
//   attention matmuls QKᵀ and AV: 2·T²·D per block
//   extras: patch T·C·p²·D, timestep 256·D + D², final adaLN 2D², final linear T·D·p²·C_out.
// "Paper GFLOPs" (DiT-MoE Table 1) = linear GMACs; true FLOPs = 2 × (linear MACs + attention MACs).

public struct ModelShape: Codable, Equatable, Sendable {
    public var depth: Int
    public var hidden: Int
    public var heads: Int
    public var patchSize: Int
    /// Latent side length (32 for 256² images with the SD VAE's factor 8).
    public var inputSize: Int
    public var inChannels: Int
    public var numClasses: Int
    /// Routed experts per layer; 0 for a dense DiT.
    public var experts: Int
    public var topK: Int
    /// Width of the shared expert in units of D (DiT-MoE: n_shared_experts = 2, intermediate 2D).
    public var sharedExperts: Int
    public var mlpRatio: Int
    /// Flash attention module layout (Wqkv + qk-norm LayerNorms with affine parameters): XL and G.
    public var flashLayout: Bool
    public var learnSigma: Bool

    public init(depth: Int, hidden: Int, heads: Int, patchSize: Int = 2, inputSize: Int = 32, inChannels: Int = 4,
                numClasses: Int = 1000, experts: Int = 0, topK: Int = 0, sharedExperts: Int = 2, mlpRatio: Int = 4,
                flashLayout: Bool = false, learnSigma: Bool = true) {
        self.depth = depth
        self.hidden = hidden
        self.heads = heads
        self.patchSize = patchSize
        self.inputSize = inputSize
        self.inChannels = inChannels
        self.numClasses = numClasses
        self.experts = experts
        self.topK = topK
        self.sharedExperts = sharedExperts
        self.mlpRatio = mlpRatio
        self.flashLayout = flashLayout
        self.learnSigma = learnSigma
    }

    public var isMoE: Bool { experts > 0 }
    public var tokens: Int { (inputSize / patchSize) * (inputSize / patchSize) }
    public var headDim: Int { hidden / heads }
    public var outChannels: Int { learnSigma ? 2 * inChannels : inChannels }
}

public struct ModelCost: Codable, Equatable, Sendable {
    public var totalParameters: Int
    public var activatedParameters: Int
    /// Linear/conv multiply-accumulates per forward of one image ("paper GFLOPs" × 1e9).
    public var linearMACs: Double
    /// QKᵀ and AV multiply-accumulates per forward of one image.
    public var attentionMACs: Double
    /// 2 × (linearMACs + attentionMACs): FLOPs per forward of one image (CFG doubles the forwards).
    public var trueFLOPs: Double

    public var paperGFLOPs: Double { linearMACs / 1e9 }
    public var trueGFLOPs: Double { trueFLOPs / 1e9 }

    public init(_ m: ModelShape) {
        precondition(m.hidden % m.heads == 0 && m.inputSize % m.patchSize == 0, "ModelCost: inconsistent shape")
        precondition(!m.isMoE || (m.topK > 0 && m.topK <= m.experts), "ModelCost: need 0 < topK ≤ experts")
        let d = m.hidden, l = m.depth, p2 = m.patchSize * m.patchSize, t = m.tokens, r = m.mlpRatio
        let d2 = d * d
        let attention = 4 * d2 + 4 * d + (m.flashLayout ? 4 * m.headDim : 0)
        let adaLN = 6 * d2 + 6 * d
        let nonBlock = m.inChannels * p2 * d + d          // patch embed
            + t * d                                       // pos_embed (saved in checkpoints)
            + 256 * d + d + d2 + d                        // timestep embedder
            + (m.numClasses + 1) * d                      // label table incl. the null class
            + 2 * d2 + 2 * d + p2 * m.outChannels * d + p2 * m.outChannels  // final layer
        let extrasMACs = Double(t * m.inChannels * p2 * d + 256 * d + d2 + 2 * d2 + t * d * p2 * m.outChannels)
        let perTokenMACs: Int
        if m.isMoE {
            let routed = 3 * r * d2
            let shared = 3 * m.sharedExperts * d2
            let gate = m.experts * d
            totalParameters = l * (attention + adaLN + m.experts * routed + shared + gate) + nonBlock
            activatedParameters = l * (attention + adaLN + m.topK * routed + shared + gate) + nonBlock
            perTokenMACs = 4 * d2 + m.topK * routed + shared + gate
        } else {
            let mlp = 2 * r * d2 + r * d + d
            totalParameters = l * (attention + adaLN + mlp) + nonBlock
            activatedParameters = totalParameters
            perTokenMACs = 4 * d2 + 2 * r * d2
        }
        linearMACs = Double(l) * (Double(t) * Double(perTokenMACs) + Double(6 * d2)) + extrasMACs
        attentionMACs = Double(l) * 2 * Double(t) * Double(t) * Double(d)
        trueFLOPs = 2 * (linearMACs + attentionMACs)
    }
}
