import Tensor

/// Every activation buffer of a forward pass, allocated once for a batch capacity (no allocation per token or
/// per layer in the steady state). Shapes in the comments use N = batch·T rows.
final class Workspace {
    let batch: Int
    let threads: Int
    let patches: FloatBuffer      // [N, C·p·p]
    let x: FloatBuffer            // [N, D] residual stream
    let h: FloatBuffer            // [N, D] modulated input of attention / MLP
    let qkv: FloatBuffer          // [N, 3D]
    let attn: FloatBuffer         // [N, D] concatenated heads
    let y: FloatBuffer            // [N, D] attention projection / MLP output
    let scores: FloatBuffer       // [threads, T, T]
    let tFreq: FloatBuffer        // [B, 256]
    let tHidden: FloatBuffer      // [B, D]
    let siluC: FloatBuffer        // [B, D] SiLU(c)
    let ada: FloatBuffer          // [B, 6D]
    let final: FloatBuffer        // [N, p²·C_out]
    let cfgInput: FloatBuffer     // [B, C, H, W]
    let hidden: FloatBuffer       // dense: [N, 4D]
    // MoE
    let gateProbs: FloatBuffer    // [N, E]
    let topIds: TypedBuffer<Int32>   // [N, K]
    let topWeights: FloatBuffer      // [N, K]
    let offsets: TypedBuffer<Int>    // [E + 1]
    let cursor: TypedBuffer<Int>     // [E]
    let rowOf: TypedBuffer<Int32>    // [N·K]: (token, slot) → its row in the expert-grouped order
    let rowWeights: FloatBuffer      // [N·K]
    let gathered: FloatBuffer        // [N·K, D]
    let expertOut: FloatBuffer       // [N·K, D]
    let sharedHidden: [FloatBuffer]  // per worker [min(N, 512), 2·2D]
    let sharedWiden: [FloatBuffer?]  // per worker, F16/BF16 shared-expert weights
    /// Widening scratch for the non-expert F16/BF16 matrices (largest one), nil when all are F32.
    let widen: FloatBuffer?

    init(config c: DiTConfig, batch: Int, weights: DiTWeights, threads: Int) {
        self.batch = batch
        self.threads = max(threads, 1)
        let n = batch * c.tokens, d = c.hiddenSize
        patches = FloatBuffer(count: n * c.patchVector)
        x = FloatBuffer(count: n * d); h = FloatBuffer(count: n * d)
        qkv = FloatBuffer(count: n * 3 * d); attn = FloatBuffer(count: n * d); y = FloatBuffer(count: n * d)
        scores = FloatBuffer(count: max(threads, 1) * c.tokens * c.tokens)
        tFreq = FloatBuffer(count: batch * TimestepEmbedderShape.frequencyDim)
        tHidden = FloatBuffer(count: batch * d); siluC = FloatBuffer(count: batch * d)
        ada = FloatBuffer(count: batch * 6 * d)
        final = FloatBuffer(count: n * c.finalVector)
        cfgInput = FloatBuffer(count: batch * c.inChannels * c.inputSize * c.inputSize)
        hidden = FloatBuffer(count: c.dense ? n * c.expertHidden : 0)
        let e = c.dense ? 0 : c.numExperts, k = c.dense ? 0 : c.numExpertsPerTok
        gateProbs = FloatBuffer(count: n * e)
        topIds = TypedBuffer(count: n * k, repeating: 0); topWeights = FloatBuffer(count: n * k)
        offsets = TypedBuffer(count: e + 1, repeating: 0); cursor = TypedBuffer(count: e, repeating: 0)
        rowOf = TypedBuffer(count: n * k, repeating: 0); rowWeights = FloatBuffer(count: n * k)
        gathered = FloatBuffer(count: n * k * d); expertOut = FloatBuffer(count: n * k * d)
        let workers = max(threads, 1)
        let sharedRows = min(n, SwiGLUExpert.maxChunkRows)
        sharedHidden = !c.hasSharedExpert ? [] : (0..<workers).map { _ in FloatBuffer(count: SwiGLUExpert.hiddenScratchCount(rows: sharedRows, width: c.sharedHidden)) }
        let widenCount = !c.hasSharedExpert ? 0 : (0..<c.depth).map { l -> Int in
            let w = weights.sharedExpert(layer: l)
            return SwiGLUExpert(gateUp: w.gateUp, down: w.down).widenScratchCount
        }.max() ?? 0
        self.sharedWiden = (0..<(c.hasSharedExpert ? workers : 0)).map { _ in widenCount > 0 ? FloatBuffer(count: widenCount) : nil }
        widen = weights.maxHalfMatrix > 0 ? FloatBuffer(count: weights.maxHalfMatrix) : nil
    }
}
