import DiT
import Tensor

/// What the forward of one block keeps for its backward. N = batch·T rows (sample-major, token m = r·G + c),
/// D = hidden size, E experts, K experts per token, H = routed expert width, Hs = shared expert width.
final class BlockActivations {
    let xIn: FloatBuffer        // [N, D] residual stream entering the block
    let mean1, rstd1: FloatBuffer   // [N] LayerNorm statistics of xIn
    let h1: FloatBuffer         // [N, D] modulated attention input
    let qkvPre: FloatBuffer     // flash layout: [N, 3D] q/k before their LayerNorm (empty otherwise)
    let qkStats: FloatBuffer    // flash layout: [N·heads, 4] mean/rstd of q, then of k
    let qkv: FloatBuffer        // [N, 3D] q, k, v as attention reads them
    let probs: FloatBuffer      // [B·heads, T, T] softmax(scale·q·kᵀ)
    let attn: FloatBuffer       // [N, D] heads concatenated
    let yAttn: FloatBuffer      // [N, D] attention projection
    let xMid: FloatBuffer       // [N, D] residual stream after the attention residual
    let mean2, rstd2: FloatBuffer
    let h2: FloatBuffer         // [N, D] modulated MLP input
    let y: FloatBuffer          // [N, D] MLP / MoE output
    let ada: FloatBuffer        // [B, 6D] shift, scale, gate (attention), shift, scale, gate (MLP)
    // MoE
    let gateProbs: FloatBuffer              // [N, E] full softmax
    let topIds: TypedBuffer<Int32>          // [N, K] sorted by weight, descending
    let topWeights: FloatBuffer             // [N, K]
    let offsets: TypedBuffer<Int>           // [E + 1] rows of expert e: offsets[e] ..< offsets[e+1]
    let rowOf: TypedBuffer<Int32>           // [N·K] (token, slot) → grouped row
    let rowToken: TypedBuffer<Int32>        // [N·K] grouped row → token
    let gathered: FloatBuffer               // [N·K, D] h2 rows grouped by expert
    let expertPre: FloatBuffer              // [N·K, 2H] [gate | up] pre-activations
    let expertAct: FloatBuffer              // [N·K, H] SiLU(gate) ⊙ up
    let expertOut: FloatBuffer              // [N·K, D] e(h), before the gate weight
    let sharedPre: FloatBuffer              // [N, 2Hs]
    let sharedAct: FloatBuffer              // [N, Hs]
    // Dense MLP
    let fc1Pre: FloatBuffer                 // [N, 4D]
    let fc1Act: FloatBuffer                 // [N, 4D] GELU(tanh)

    init(config c: DiTConfig, batch: Int) {
        let n = batch * c.tokens, d = c.hiddenSize
        let moe = c.isMoE, e = moe ? c.numExperts : 0, k = moe ? c.numExpertsPerTok : 0
        let h = c.expertHidden, hs = c.sharedHidden
        xIn = FloatBuffer(count: n * d)
        mean1 = FloatBuffer(count: n); rstd1 = FloatBuffer(count: n)
        h1 = FloatBuffer(count: n * d)
        qkvPre = FloatBuffer(count: c.useFlashAttn ? n * 3 * d : 0)
        qkStats = FloatBuffer(count: c.useFlashAttn ? n * c.numHeads * 4 : 0)
        qkv = FloatBuffer(count: n * 3 * d)
        probs = FloatBuffer(count: batch * c.numHeads * c.tokens * c.tokens)
        attn = FloatBuffer(count: n * d); yAttn = FloatBuffer(count: n * d); xMid = FloatBuffer(count: n * d)
        mean2 = FloatBuffer(count: n); rstd2 = FloatBuffer(count: n)
        h2 = FloatBuffer(count: n * d); y = FloatBuffer(count: n * d)
        ada = FloatBuffer(count: batch * 6 * d)
        gateProbs = FloatBuffer(count: n * e)
        topIds = TypedBuffer(count: n * k, repeating: 0); topWeights = FloatBuffer(count: n * k)
        offsets = TypedBuffer(count: e + 1, repeating: 0)
        rowOf = TypedBuffer(count: n * k, repeating: 0); rowToken = TypedBuffer(count: n * k, repeating: 0)
        gathered = FloatBuffer(count: n * k * d)
        expertPre = FloatBuffer(count: moe ? n * k * 2 * h : 0)
        expertAct = FloatBuffer(count: moe ? n * k * h : 0)
        expertOut = FloatBuffer(count: n * k * d)
        sharedPre = FloatBuffer(count: n * 2 * hs); sharedAct = FloatBuffer(count: n * hs)
        fc1Pre = FloatBuffer(count: moe ? 0 : n * h); fc1Act = FloatBuffer(count: moe ? 0 : n * h)
    }
}

/// Everything outside the blocks that the backward needs, plus the gradient scratch shared by all blocks.
final class TrainingBuffers {
    let batch: Int
    let blocks: [BlockActivations]
    let patches: FloatBuffer    // [N, C·p·p]
    let tFreq: FloatBuffer      // [B, 256]
    let tPre: FloatBuffer       // [B, D] first timestep linear, before SiLU
    let tAct: FloatBuffer       // [B, D]
    let c: FloatBuffer          // [B, D] conditioning t_emb + y_emb, before SiLU
    let siluC: FloatBuffer      // [B, D]
    let xFinal: FloatBuffer     // [N, D] output of the last block
    let meanF, rstdF: FloatBuffer
    let hF: FloatBuffer         // [N, D]
    let adaF: FloatBuffer       // [B, 2D] final layer shift, scale
    let finalTokens: FloatBuffer  // [N, p²·C_out]
    let out: FloatBuffer        // [B, C_out, H, W]
    let labels: TypedBuffer<Int32>  // [B] y of the forward (the label-table gradient reads it)
    // Gradient scratch (reused by every block).
    let dX: FloatBuffer, dH: FloatBuffer, dY: FloatBuffer, dAttn: FloatBuffer   // [N, D]
    let dQKV: FloatBuffer       // [N, 3D]
    let dScores: FloatBuffer    // [threads, T, T]
    let dAda: FloatBuffer       // [B, 6D]
    let dSiluC: FloatBuffer     // [B, D]
    let dC: FloatBuffer, dTAct: FloatBuffer  // [B, D]
    let dFinalTokens: FloatBuffer
    let dGateProbs: FloatBuffer // [N, E]
    let dRowWeights: FloatBuffer // [N·K]
    let dExpertOut: FloatBuffer  // [N·K, D]
    let dExpertPre: FloatBuffer  // [N·K, 2H]
    let dExpertAct: FloatBuffer  // [N·K, H]
    let dGathered: FloatBuffer   // [N·K, D]
    let dSharedPre: FloatBuffer, dSharedAct: FloatBuffer
    let dFc1: FloatBuffer        // dense: [N, 4D]
    /// Per-worker partial sums of the q/k LayerNorm parameter gradients: [threads, 4·hd].
    let dQKNorm: FloatBuffer

    init(config c: DiTConfig, batch: Int, threads: Int) {
        self.batch = batch
        let n = batch * c.tokens, d = c.hiddenSize, w = max(threads, 1)
        let moe = c.isMoE, k = moe ? c.numExpertsPerTok : 0
        blocks = (0..<c.depth).map { _ in BlockActivations(config: c, batch: batch) }
        patches = FloatBuffer(count: n * c.patchVector)
        tFreq = FloatBuffer(count: batch * TimestepEmbedderShape.frequencyDim)
        tPre = FloatBuffer(count: batch * d); tAct = FloatBuffer(count: batch * d)
        self.c = FloatBuffer(count: batch * d); siluC = FloatBuffer(count: batch * d)
        xFinal = FloatBuffer(count: n * d); meanF = FloatBuffer(count: n); rstdF = FloatBuffer(count: n)
        hF = FloatBuffer(count: n * d); adaF = FloatBuffer(count: batch * 2 * d)
        finalTokens = FloatBuffer(count: n * c.finalVector)
        out = FloatBuffer(count: batch * c.outChannels * c.inputSize * c.inputSize)
        labels = TypedBuffer(count: batch, repeating: 0)
        dX = FloatBuffer(count: n * d); dH = FloatBuffer(count: n * d); dY = FloatBuffer(count: n * d)
        dAttn = FloatBuffer(count: n * d); dQKV = FloatBuffer(count: n * 3 * d)
        dScores = FloatBuffer(count: w * c.tokens * c.tokens)
        dAda = FloatBuffer(count: batch * 6 * d); dSiluC = FloatBuffer(count: batch * d)
        dC = FloatBuffer(count: batch * d); dTAct = FloatBuffer(count: batch * d)
        dFinalTokens = FloatBuffer(count: n * c.finalVector)
        dGateProbs = FloatBuffer(count: moe ? n * c.numExperts : 0)
        dRowWeights = FloatBuffer(count: n * k)
        dExpertOut = FloatBuffer(count: n * k * d)
        dExpertPre = FloatBuffer(count: moe ? n * k * 2 * c.expertHidden : 0)
        dExpertAct = FloatBuffer(count: moe ? n * k * c.expertHidden : 0)
        dGathered = FloatBuffer(count: n * k * d)
        dSharedPre = FloatBuffer(count: n * 2 * c.sharedHidden); dSharedAct = FloatBuffer(count: n * c.sharedHidden)
        dFc1 = FloatBuffer(count: moe ? 0 : n * c.expertHidden)
        dQKNorm = FloatBuffer(count: c.useFlashAttn ? w * 4 * c.headDim : 0)
    }
}
