import Foundation
import Tensor

/// DiT-MoE and dense DiT inference (the forward of upstream `models.py`). One instance owns its scratch space (sized
/// for the largest batch seen, never reallocated for smaller ones) and is not thread-safe; parallelism is inside the
/// forward.
///
/// Tensor layouts: images `[B, C, H, W]`; tokens `[B·T, D]` in (sample, token) order, token m = r·G + c; the
/// conditioning vector c and its adaLN outputs are per sample `[B, D]` / `[B, 6D]`.
public final class DiTModel {
    public let config: DiTConfig
    public let weights: DiTWeights
    /// Where routed experts run. Defaults to the in-process executor on `weights`.
    public var executor: ExpertExecutor
    /// Receives each MoE layer's routing; nil costs nothing.
    public weak var observer: RoutingObserver?
    /// When non-nil, accumulates wall time per phase.
    public var profile: PhaseProfile?

    private var ws: Workspace?
    private let blocks: [BlockWeights]
    private let layerNormEps: Float = 1e-6

    public init(weights: DiTWeights, executor: ExpertExecutor? = nil) throws {
        guard weights.scope == .full else {
            throw DiTError.badConfig(source: "DiTModel", field: "weights", expected: "the full model", got: "an expert subset")
        }
        self.config = weights.config
        self.weights = weights
        self.executor = executor ?? (weights.config.isMoE ? InProcessExpertExecutor(weights: weights) : NoExperts())
        blocks = (0..<weights.config.depth).map { BlockWeights(weights, layer: $0) }
    }

    /// Convenience: a built-in or JSON config with weights from a file or seeded random init.
    public convenience init(config: DiTConfig, source: WeightSource) throws {
        try self.init(weights: DiTWeights(config: config, source: source))
    }

    // MARK: Forward

    /// `out[B, C_out, H, W] = model(x[B, C, H, W], t[B], y[B])`. `t` is in the checkpoint's own time units
    /// (DDPM step index or rectified-flow time); `y` are class ids in `0...numClasses` (numClasses = null class).
    public func forward(x: UnsafePointer<Float>, t: UnsafePointer<Float>, y: UnsafePointer<Int32>, batch: Int,
                        out: UnsafeMutablePointer<Float>) throws {
        let c = config
        for b in 0..<batch where y[b] < 0 || Int(y[b]) > c.numClasses {
            throw DiTError.badInput(path: "forward", field: "y[\(b)]",
                                    reason: "class \(y[b]) outside 0...\(c.numClasses) (\(c.numClasses) is the null class)")
        }
        let ws = workspace(batch: batch)
        let n = batch * c.tokens, d = c.hiddenSize
        var clock = PhaseProfile.now()
        func lap(_ phase: PhaseProfile.Phase) {
            guard profile != nil else { return }
            let now = PhaseProfile.now(); profile!.add(phase, now - clock); clock = now
        }

        // 1. tokens = patch_embed(x) + pos_embed; c = TE(t) + LE(y); SiLU(c) feeds every adaLN.
        patchify(x, batch: batch, channels: c.inChannels, height: c.inputSize, width: c.inputSize, patch: c.patchSize,
                 into: ws.patches.pointer)
        linear(ws.patches.pointer, rows: n, weight: weights.matrix("x_embedder.proj.weight"),
               bias: weights.vector("x_embedder.proj.bias"), into: ws.x.pointer, scratch: ws.widen?.pointer)
        let pos = weights.vector("pos_embed")
        for b in 0..<batch { addInPlace(ws.x.pointer + b * c.tokens * d, pos, count: c.tokens * d) }
        embedCondition(t: t, y: y, batch: batch, ws: ws)
        lap(.embed)

        for (i, block) in blocks.enumerated() {
            try runBlock(i, block, batch: batch, ws: ws, lap: lap)
        }

        // Final layer: adaLN (shift, scale) → LN → modulate → linear → unpatchify.
        linear(ws.siluC.pointer, rows: batch, weight: weights.matrix("final_layer.adaLN_modulation.1.weight"),
               bias: weights.vector("final_layer.adaLN_modulation.1.bias"), into: ws.ada.pointer, scratch: ws.widen?.pointer)
        normModulate(ws.x.pointer, into: ws.h.pointer, batch: batch, ada: ws.ada.pointer, adaWidth: 2 * d, shift: 0, scale: 1)
        linear(ws.h.pointer, rows: n, weight: weights.matrix("final_layer.linear.weight"),
               bias: weights.vector("final_layer.linear.bias"), into: ws.final.pointer, scratch: ws.widen?.pointer)
        unpatchify(ws.final.pointer, batch: batch, channels: c.outChannels, height: c.inputSize, width: c.inputSize,
                   patch: c.patchSize, into: out)
        lap(.final)
        profile?.forwards += 1
    }

    /// Upstream `forward_with_cfg` (inherited from DiT) on a batch of 2n: the model runs on
    /// [x_first_half, x_first_half] with the given t and y (y's second half is normally the null class); ε channels
    /// 0..<3 of both halves become u + s·(c − u); every other channel keeps its own half's value.
    public func forwardWithCFG(x: UnsafePointer<Float>, t: UnsafePointer<Float>, y: UnsafePointer<Int32>, batch: Int,
                               cfgScale: Float, out: UnsafeMutablePointer<Float>) throws {
        guard batch % 2 == 0, batch > 0 else {
            throw DiTError.badInput(path: "forward", field: "x", reason: "classifier-free guidance needs an even batch (cond half, uncond half), got \(batch)")
        }
        let c = config
        let half = batch / 2, image = c.inChannels * c.inputSize * c.inputSize
        let ws = workspace(batch: batch)
        ws.cfgInput.pointer.update(from: x, count: half * image)
        (ws.cfgInput.pointer + half * image).update(from: x, count: half * image)
        try forward(x: ws.cfgInput.pointer, t: t, y: y, batch: batch, out: out)
        let plane = c.inputSize * c.inputSize, outImage = c.outChannels * plane
        let guided = min(3, c.outChannels)
        for b in 0..<half {
            let cond = out + b * outImage, uncond = out + (half + b) * outImage
            for i in 0..<(guided * plane) {
                let g = uncond[i] + cfgScale * (cond[i] - uncond[i])
                cond[i] = g; uncond[i] = g
            }
        }
    }

    // MARK: Pieces

    private func embedCondition(t: UnsafePointer<Float>, y: UnsafePointer<Int32>, batch: Int, ws: Workspace) {
        let d = config.hiddenSize, f = TimestepEmbedderShape.frequencyDim
        timestepEmbedding(t, batch: batch, dim: f, into: ws.tFreq.pointer)
        linear(ws.tFreq.pointer, rows: batch, weight: weights.matrix("t_embedder.mlp.0.weight"),
               bias: weights.vector("t_embedder.mlp.0.bias"), into: ws.tHidden.pointer, scratch: ws.widen?.pointer)
        siluInPlace(ws.tHidden.pointer, count: batch * d)
        linear(ws.tHidden.pointer, rows: batch, weight: weights.matrix("t_embedder.mlp.2.weight"),
               bias: weights.vector("t_embedder.mlp.2.bias"), into: ws.siluC.pointer, scratch: ws.widen?.pointer)
        let table = weights.vector("y_embedder.embedding_table.weight")
        for b in 0..<batch { addInPlace(ws.siluC.pointer + b * d, table + Int(y[b]) * d, count: d) }
        siluInPlace(ws.siluC.pointer, count: batch * d)
    }

    /// h = LN(x)·(1 + scale) + shift per sample, where shift/scale are chunks `shift`/`scale` (each D wide) of the
    /// sample's adaLN row of width `adaWidth`. LayerNorm without affine, eps 1e-6.
    private func normModulate(_ x: UnsafePointer<Float>, into h: UnsafeMutablePointer<Float>, batch: Int,
                              ada: UnsafePointer<Float>, adaWidth: Int, shift: Int, scale: Int) {
        let t = config.tokens, d = config.hiddenSize, eps = layerNormEps
        Parallel.forChunks(batch * t, minChunk: 32) { _, rows in
            layerNorm(x + rows.lowerBound * d, rows: rows.count, width: d, eps: eps, into: h + rows.lowerBound * d)
            for r in rows {
                let a = ada + (r / t) * adaWidth
                let sh = a + shift * d, sc = a + scale * d, hr = h + r * d
                for i in 0..<d { hr[i] = hr[i] * (1 + sc[i]) + sh[i] }
            }
        }
    }

    /// x += gate ⊙ y per sample, gate = chunk `gate` of the sample's adaLN row.
    private func gatedResidual(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, batch: Int,
                               ada: UnsafePointer<Float>, gate: Int) {
        let t = config.tokens, d = config.hiddenSize
        Parallel.forChunks(batch * t, minChunk: 32) { _, rows in
            for r in rows {
                let g = ada + (r / t) * 6 * d + gate * d, xr = x + r * d, yr = y + r * d
                for i in 0..<d { xr[i] += g[i] * yr[i] }
            }
        }
    }

    private func runBlock(_ layer: Int, _ w: BlockWeights, batch: Int, ws: Workspace,
                          lap: (PhaseProfile.Phase) -> Void) throws {
        let c = config, d = c.hiddenSize, n = batch * c.tokens
        let widen = ws.widen?.pointer
        // adaLN: [B, 6D] = SiLU(c)·Wᵀ + b; chunks shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp.
        parallelLinear(ws.siluC.pointer, rows: batch, inFeatures: d, weight: w.ada.float32(scratch: widen),
                       outFeatures: 6 * d, bias: w.adaBias, into: ws.ada.pointer)
        lap(.adaLN)

        // Attention residual.
        normModulate(ws.x.pointer, into: ws.h.pointer, batch: batch, ada: ws.ada.pointer, adaWidth: 6 * d, shift: 0, scale: 1)
        parallelLinear(ws.h.pointer, rows: n, weight: w.qkv, bias: w.qkvBias, into: ws.qkv.pointer, scratch: widen)
        if let qn = w.qNorm, let kn = w.kNorm {
            // Per-head affine LayerNorm over hd on q and k (flash layout), parameters shared by all heads.
            let hd = c.headDim, heads = c.numHeads, eps = layerNormEps, qkv = ws.qkv.pointer
            Parallel.forChunks(n, minChunk: 32) { _, rows in
                for r in rows {
                    let row = qkv + r * 3 * d
                    layerNorm(row, rows: heads, width: hd, eps: eps, weight: qn.weight, bias: qn.bias, into: row)
                    layerNorm(row + d, rows: heads, width: hd, eps: eps, weight: kn.weight, bias: kn.bias, into: row + d)
                }
            }
        }
        multiHeadAttention(qkv: ws.qkv.pointer, out: ws.attn.pointer, batch: batch, tokens: c.tokens, dim: d,
                           heads: c.numHeads, scores: ws.scores.pointer)
        parallelLinear(ws.attn.pointer, rows: n, weight: w.proj, bias: w.projBias, into: ws.y.pointer, scratch: widen)
        gatedResidual(ws.x.pointer, ws.y.pointer, batch: batch, ada: ws.ada.pointer, gate: 2)
        lap(.attention)

        // MLP residual: MoE or dense.
        normModulate(ws.x.pointer, into: ws.h.pointer, batch: batch, ada: ws.ada.pointer, adaWidth: 6 * d, shift: 3, scale: 4)
        if let moe = w.moe {
            try runMoE(layer, moe, batch: batch, ws: ws, lap: lap)
        } else if let mlp = w.mlp {
            parallelLinear(ws.h.pointer, rows: n, weight: mlp.fc1, bias: mlp.fc1Bias, into: ws.hidden.pointer, scratch: widen)
            let width = c.expertHidden, hidden = ws.hidden.pointer
            Parallel.forChunks(n, minChunk: 32) { _, rows in
                geluTanhInPlace(hidden + rows.lowerBound * width, count: rows.count * width)
            }
            parallelLinear(ws.hidden.pointer, rows: n, weight: mlp.fc2, bias: mlp.fc2Bias, into: ws.y.pointer, scratch: widen)
            lap(.denseMLP)
        }
        gatedResidual(ws.x.pointer, ws.y.pointer, batch: batch, ada: ws.ada.pointer, gate: 5)
        lap(.combine)
    }

    /// Upstream `SparseMoeBlock`: softmax gate, top-K without renormalisation, routed experts through the
    /// executor, scatter-add in ascending expert order, then the always-on shared expert. Result in `ws.y`.
    private func runMoE(_ layer: Int, _ w: MoEWeights, batch: Int, ws: Workspace,
                        lap: (PhaseProfile.Phase) -> Void) throws {
        let c = config, d = c.hiddenSize, n = batch * c.tokens, e = c.numExperts, k = c.numExpertsPerTok
        let probs = ws.gateProbs.pointer
        linear(ws.h.pointer, rows: n, weight: w.gate, bias: nil, into: probs, scratch: ws.widen?.pointer)
        softmaxRowsInPlace(probs, rows: n, width: e)
        selectTopK(probs, tokens: n, experts: e, k: k, ids: ws.topIds.pointer, weights: ws.topWeights.pointer)
        observer?.observe(layer: layer, batch: batch, tokens: c.tokens, topK: k, experts: ws.topIds.pointer,
                          weights: ws.topWeights.pointer)

        // Group (token, slot) rows by expert, ascending expert then ascending token (a counting sort); rowOf maps
        // (token, slot) to its grouped row. The copies into the grouped rows run in parallel over tokens.
        let offsets = ws.offsets.pointer, cursor = ws.cursor.pointer, rowOf = ws.rowOf.pointer
        let topIds = ws.topIds.pointer, topWeights = ws.topWeights.pointer, rowWeights = ws.rowWeights.pointer
        for i in 0...e { offsets[i] = 0 }
        for i in 0..<(n * k) { offsets[Int(topIds[i]) + 1] += 1 }
        for i in 0..<e { offsets[i + 1] += offsets[i]; cursor[i] = offsets[i] }
        for i in 0..<(n * k) {
            let ex = Int(topIds[i])
            let r = cursor[ex]; cursor[ex] = r + 1
            rowOf[i] = Int32(r)
            rowWeights[r] = topWeights[i]
        }
        let h = ws.h.pointer, gathered = ws.gathered.pointer
        Parallel.forChunks(n, minChunk: 64) { _, tokens in
            for tok in tokens {
                for slot in 0..<k { (gathered + Int(rowOf[tok * k + slot]) * d).update(from: h + tok * d, count: d) }
            }
        }
        lap(.gate)

        try executor.execute(ExpertShards(layer: layer, dim: d, expertCount: e, offsets: UnsafePointer(offsets),
                                          input: UnsafePointer(gathered), gateWeights: UnsafePointer(ws.rowWeights.pointer),
                                          output: ws.expertOut.pointer))
        lap(.routedExperts)

        // y = Σ_k w_k·e_k(h), each token's terms added to 0 in ascending expert order (= ascending grouped row);
        // then + shared(h). Parallel over tokens.
        let y = ws.y.pointer, eo = ws.expertOut.pointer
        Parallel.forChunks(n, minChunk: 64) { _, tokens in
            for tok in tokens {
                let yt = y + tok * d, rows = rowOf + tok * k
                yt.update(repeating: 0, count: d)
                var previous = -1
                for _ in 0..<k {
                    var next = Int.max
                    for slot in 0..<k { let r = Int(rows[slot]); if r > previous && r < next { next = r } }
                    addInPlace(yt, eo + next * d, count: d)
                    previous = next
                }
            }
        }
        lap(.combine)
        guard let shared = w.shared else { return }
        Parallel.forChunks(n, minChunk: 32) { worker, rows in
            shared.apply(h + rows.lowerBound * d, rows: rows.count, into: y + rows.lowerBound * d, accumulate: true,
                         hidden: ws.sharedHidden[worker].pointer, widen: ws.sharedWiden[worker]?.pointer)
        }
        lap(.sharedExpert)
    }

    // MARK: Workspace

    private func workspace(batch: Int) -> Workspace {
        if let ws, ws.batch >= batch, ws.threads >= Parallel.threads { return ws }
        let fresh = Workspace(config: config, batch: max(batch, ws?.batch ?? 0), weights: weights, threads: Parallel.threads)
        ws = fresh
        return fresh
    }
}

/// Top-K of each row of `probs` `[tokens, experts]`, slots sorted by probability descending; among equal
/// probabilities the lower expert id wins (scan in ascending id with strict comparison). No renormalisation.
@inlinable
public func selectTopK(_ probs: UnsafePointer<Float>, tokens: Int, experts: Int, k: Int,
                ids: UnsafeMutablePointer<Int32>, weights: UnsafeMutablePointer<Float>) {
    for t in 0..<tokens {
        let row = probs + t * experts, outIds = ids + t * k, outW = weights + t * k
        var filled = 0
        for e in 0..<experts {
            let p = row[e]
            if filled == k && !(p > outW[k - 1]) { continue }
            // Insert p at its place in the descending list (after any equal values: lower id wins ties).
            var j = min(filled, k - 1)
            while j > 0 && p > outW[j - 1] { outW[j] = outW[j - 1]; outIds[j] = outIds[j - 1]; j -= 1 }
            outW[j] = p; outIds[j] = Int32(e)
            if filled < k { filled += 1 }
        }
    }
}

/// Executor for dense models, which have no routed experts.
final class NoExperts: ExpertExecutor {
    func execute(_ shards: ExpertShards) throws {
        throw DiTError.badConfig(source: "executor", field: "dense", expected: "a MoE model", got: "a dense model")
    }
}
