import DiT
import Foundation
import Tensor

/// DiT-MoE and dense DiT with a backward pass, for training (the same architecture as `DiTModel`, whose forward
/// it must match; a test checks it). Parameters and gradients are flat `ParameterSet`s under the upstream key
/// names; every activation the backward needs lives in buffers allocated once per batch capacity.
///
/// Layouts: images `[B, C, H, W]`; tokens `[B·T, D]` sample-major (token m = r·G + c); adaLN rows per sample.
/// The gate's top-K weights are the raw softmax probabilities (no renormalisation); gradients reach the gate only
/// through the selected weights and, when `balanceAlpha > 0`, through the expert-level balance loss
/// L_bal = α·Σ_i P_i·f_i per MoE layer (P_i = mean gate probability of expert i over the N = B·T tokens,
/// f_i = E·c_i/(N·K) with c_i the (token, slot) pairs routed to i, a constant).
public final class TrainableDiT {
    public let config: DiTConfig
    public let params: ParameterSet
    public let grads: ParameterSet
    /// α of the balance loss (upstream's code: 0.01; 0 turns it off).
    public var balanceAlpha: Float

    /// Per MoE layer, after each forward: the balance loss α·Σ P_i f_i and the routed (token, slot) count per expert.
    public private(set) var balanceLoss: [Float]
    public private(set) var expertCounts: [[Int]]

    private(set) var buffers: TrainingBuffers?
    private var lastBatch = 0
    private let eps: Float = 1e-6

    public init(config: DiTConfig, balanceAlpha: Float = 0.01) {
        self.config = config
        params = ParameterSet(config: config)
        grads = ParameterSet(config: config)
        self.balanceAlpha = balanceAlpha
        balanceLoss = Array(repeating: 0, count: config.isMoE ? config.depth : 0)
        expertCounts = Array(repeating: Array(repeating: 0, count: config.isMoE ? config.numExperts : 0),
                             count: config.isMoE ? config.depth : 0)
    }

    /// The output of the last forward, `[B, C_out, H, W]`.
    public var output: UnsafePointer<Float> { UnsafePointer(buffers!.out.pointer) }

    /// Routing of the last forward for MoE layer `layer`: `[B·T, K]` expert ids, slots sorted by weight.
    public func routing(layer: Int) -> UnsafePointer<Int32> { UnsafePointer(buffers!.blocks[layer].topIds.pointer) }

    private func prepare(batch: Int) -> TrainingBuffers {
        if let b = buffers, b.batch >= batch, b.dScores.count >= Parallel.threads * config.tokens * config.tokens {
            return b
        }
        let b = TrainingBuffers(config: config, batch: max(batch, buffers?.batch ?? 0), threads: Parallel.threads)
        buffers = b
        return b
    }

    // MARK: Forward

    /// Runs the model on `x [B, C, H, W]`, `t [B]` (DDPM step index as a float) and `y [B]` (class ids,
    /// `numClasses` = the null class), keeping what the backward needs. Returns the output `[B, C_out, H, W]`.
    @discardableResult
    public func forward(x: UnsafePointer<Float>, t: UnsafePointer<Float>, y: UnsafePointer<Int32>, batch: Int) -> UnsafePointer<Float> {
        let c = config, d = c.hiddenSize, n = batch * c.tokens, p = params
        let bufs = prepare(batch: batch)
        lastBatch = batch
        bufs.labels.pointer.update(from: y, count: batch)
        // Tokens: patch embed + fixed position table.
        patchify(x, batch: batch, channels: c.inChannels, height: c.inputSize, width: c.inputSize, patch: c.patchSize,
                 into: bufs.patches.pointer)
        let x0 = bufs.blocks.first?.xIn.pointer ?? bufs.xFinal.pointer
        parallelLinear(bufs.patches.pointer, rows: n, inFeatures: c.patchVector, weight: p["x_embedder.proj.weight"],
                       outFeatures: d, bias: p["x_embedder.proj.bias"], into: x0)
        let pos = p["pos_embed"]
        for b in 0..<batch { addInPlace(x0 + b * c.tokens * d, pos, count: c.tokens * d) }

        // Conditioning c = t_emb + y_emb; SiLU(c) feeds every adaLN.
        timestepEmbedding(t, batch: batch, dim: TimestepEmbedderShape.frequencyDim, into: bufs.tFreq.pointer)
        linear(bufs.tFreq.pointer, rows: batch, inFeatures: TimestepEmbedderShape.frequencyDim,
               weight: p["t_embedder.mlp.0.weight"], outFeatures: d, bias: p["t_embedder.mlp.0.bias"], into: bufs.tPre.pointer)
        for i in 0..<(batch * d) { bufs.tAct.pointer[i] = silu(bufs.tPre.pointer[i]) }
        linear(bufs.tAct.pointer, rows: batch, inFeatures: d, weight: p["t_embedder.mlp.2.weight"], outFeatures: d,
               bias: p["t_embedder.mlp.2.bias"], into: bufs.c.pointer)
        let table = p["y_embedder.embedding_table.weight"]
        for b in 0..<batch { addInPlace(bufs.c.pointer + b * d, table + Int(y[b]) * d, count: d) }
        for i in 0..<(batch * d) { bufs.siluC.pointer[i] = silu(bufs.c.pointer[i]) }

        for l in 0..<c.depth {
            let next = l + 1 < c.depth ? bufs.blocks[l + 1].xIn.pointer : bufs.xFinal.pointer
            blockForward(l, batch: batch, bufs: bufs, out: next)
        }

        // Final layer: adaLN (shift, scale) → LN → modulate → linear → unpatchify.
        linear(bufs.siluC.pointer, rows: batch, inFeatures: d, weight: p["final_layer.adaLN_modulation.1.weight"],
               outFeatures: 2 * d, bias: p["final_layer.adaLN_modulation.1.bias"], into: bufs.adaF.pointer)
        normModulate(bufs.xFinal.pointer, batch: batch, mean: bufs.meanF.pointer, rstd: bufs.rstdF.pointer,
                     ada: bufs.adaF.pointer, adaWidth: 2 * d, shift: 0, scale: 1, into: bufs.hF.pointer)
        parallelLinear(bufs.hF.pointer, rows: n, inFeatures: d, weight: p["final_layer.linear.weight"],
                       outFeatures: c.finalVector, bias: p["final_layer.linear.bias"], into: bufs.finalTokens.pointer)
        unpatchify(bufs.finalTokens.pointer, batch: batch, channels: c.outChannels, height: c.inputSize,
                   width: c.inputSize, patch: c.patchSize, into: bufs.out.pointer)
        return UnsafePointer(bufs.out.pointer)
    }

    private func blockForward(_ l: Int, batch: Int, bufs: TrainingBuffers, out xOut: UnsafeMutablePointer<Float>) {
        let c = config, d = c.hiddenSize, n = batch * c.tokens, p = params, a = bufs.blocks[l]
        let key = "blocks.\(l)."
        parallelLinear(bufs.siluC.pointer, rows: batch, inFeatures: d, weight: p[key + "adaLN_modulation.1.weight"],
                       outFeatures: 6 * d, bias: p[key + "adaLN_modulation.1.bias"], into: a.ada.pointer)

        // Attention residual.
        normModulate(a.xIn.pointer, batch: batch, mean: a.mean1.pointer, rstd: a.rstd1.pointer, ada: a.ada.pointer,
                     adaWidth: 6 * d, shift: 0, scale: 1, into: a.h1.pointer)
        let (qkvKey, projKey) = attentionKeys(l)
        let flash = c.useFlashAttn
        parallelLinear(a.h1.pointer, rows: n, inFeatures: d, weight: p[qkvKey + ".weight"], outFeatures: 3 * d,
                       bias: p[qkvKey + ".bias"], into: flash ? a.qkvPre.pointer : a.qkv.pointer)
        if flash { qkNormForward(l, rows: n, a: a) }
        let heads = c.numHeads, hd = c.headDim, t = c.tokens, scale = 1 / Float(hd).squareRoot()
        Parallel.forChunks(batch * heads) { _, pairs in
            for pair in pairs {
                let b = pair / heads, h = pair % heads
                attentionHead(qkv: a.qkv.pointer + b * t * 3 * d, out: a.attn.pointer + b * t * d, tokens: t, dim: d,
                              headDim: hd, head: h, scale: scale, scores: a.probs.pointer + pair * t * t)
            }
        }
        parallelLinear(a.attn.pointer, rows: n, inFeatures: d, weight: p[projKey + ".weight"], outFeatures: d,
                       bias: p[projKey + ".bias"], into: a.yAttn.pointer)
        gatedResidual(base: a.xIn.pointer, a.yAttn.pointer, batch: batch, ada: a.ada.pointer, gate: 2, into: a.xMid.pointer)

        // MLP residual.
        normModulate(a.xMid.pointer, batch: batch, mean: a.mean2.pointer, rstd: a.rstd2.pointer, ada: a.ada.pointer,
                     adaWidth: 6 * d, shift: 3, scale: 4, into: a.h2.pointer)
        if c.isMoE {
            moeForward(l, batch: batch, a: a)
        } else {
            let hw = c.expertHidden
            parallelLinear(a.h2.pointer, rows: n, inFeatures: d, weight: p[key + "mlp.fc1.weight"], outFeatures: hw,
                           bias: p[key + "mlp.fc1.bias"], into: a.fc1Pre.pointer)
            let pre = a.fc1Pre.pointer, act = a.fc1Act.pointer
            Parallel.forChunks(n * hw, minChunk: 4096) { _, r in for i in r { act[i] = geluTanh(pre[i]) } }
            parallelLinear(act, rows: n, inFeatures: hw, weight: p[key + "mlp.fc2.weight"], outFeatures: d,
                           bias: p[key + "mlp.fc2.bias"], into: a.y.pointer)
        }
        gatedResidual(base: a.xMid.pointer, a.y.pointer, batch: batch, ada: a.ada.pointer, gate: 5, into: xOut)
    }

    private func attentionKeys(_ l: Int) -> (qkv: String, proj: String) {
        config.useFlashAttn ? ("blocks.\(l).attn.Wqkv", "blocks.\(l).attn.out_proj") : ("blocks.\(l).attn.qkv", "blocks.\(l).attn.proj")
    }

    /// Flash layout: per-head affine LayerNorm over hd on q and k (parameters shared by the heads); v unchanged.
    private func qkNormForward(_ l: Int, rows n: Int, a: BlockActivations) {
        let c = config, d = c.hiddenSize, heads = c.numHeads, hd = c.headDim, eps = eps
        let qw = params["blocks.\(l).attn.q_norm.weight"], qb = params["blocks.\(l).attn.q_norm.bias"]
        let kw = params["blocks.\(l).attn.k_norm.weight"], kb = params["blocks.\(l).attn.k_norm.bias"]
        let pre = a.qkvPre.pointer, qkv = a.qkv.pointer, stats = a.qkStats.pointer
        Parallel.forChunks(n, minChunk: 32) { _, rows in
            for r in rows {
                let src = pre + r * 3 * d, dst = qkv + r * 3 * d
                for part in 0..<2 {
                    let w = part == 0 ? qw : kw, b = part == 0 ? qb : kb
                    for h in 0..<heads {
                        let s = stats + (r * heads + h) * 4 + 2 * part
                        layerNormStatistics(src + part * d + h * hd, rows: 1, width: hd, eps: eps, mean: s, rstd: s + 1)
                        let xs = src + part * d + h * hd, ys = dst + part * d + h * hd
                        for i in 0..<hd { ys[i] = (xs[i] - s[0]) * s[1] * w[i] + b[i] }
                    }
                }
                (dst + 2 * d).update(from: src + 2 * d, count: d)
            }
        }
    }

    private func moeForward(_ l: Int, batch: Int, a: BlockActivations) {
        let c = config, d = c.hiddenSize, n = batch * c.tokens, e = c.numExperts, k = c.numExpertsPerTok
        let hw = c.expertHidden, key = "blocks.\(l).moe."
        let probs = a.gateProbs.pointer
        parallelLinear(a.h2.pointer, rows: n, inFeatures: d, weight: params[key + "gate.weight"], outFeatures: e,
                       bias: nil, into: probs)
        softmaxRowsInPlace(probs, rows: n, width: e)
        selectTopK(probs, tokens: n, experts: e, k: k, ids: a.topIds.pointer, weights: a.topWeights.pointer)

        // Group (token, slot) rows by expert: ascending expert, then ascending token.
        let offsets = a.offsets.pointer
        for i in 0...e { offsets[i] = 0 }
        for i in 0..<(n * k) { offsets[Int(a.topIds.pointer[i]) + 1] += 1 }
        for i in 0..<e { offsets[i + 1] += offsets[i] }
        var counts = expertCounts[l]
        for i in 0..<e { counts[i] = offsets[i + 1] - offsets[i] }
        expertCounts[l] = counts
        var cursor = Array(UnsafeBufferPointer(start: offsets, count: e))
        for tok in 0..<n {
            for slot in 0..<k {
                let ex = Int(a.topIds.pointer[tok * k + slot])
                let r = cursor[ex]; cursor[ex] = r + 1
                a.rowOf.pointer[tok * k + slot] = Int32(r); a.rowToken.pointer[r] = Int32(tok)
                (a.gathered.pointer + r * d).update(from: a.h2.pointer + tok * d, count: d)
            }
        }
        // Balance loss α·Σ_i P_i·f_i.
        var loss: Float = 0
        if balanceAlpha > 0 {
            for i in 0..<e {
                var pSum: Float = 0
                for tok in 0..<n { pSum += probs[tok * e + i] }
                let f = Float(e) * Float(counts[i]) / Float(n * k)
                loss += pSum / Float(n) * f
            }
        }
        balanceLoss[l] = balanceAlpha * loss

        // Routed experts, one worker per group of experts.
        let pre = a.expertPre.pointer, act = a.expertAct.pointer, eo = a.expertOut.pointer, g = a.gathered.pointer
        let params = params
        forExperts(offsets: offsets, experts: e) { ex, rows in
            let x = key + "experts.\(ex)."
            let r0 = rows.lowerBound, m = rows.count
            linear(g + r0 * d, rows: m, inFeatures: d, weight: params.fused(x), outFeatures: 2 * hw, bias: nil,
                   into: pre + r0 * 2 * hw)
            for r in 0..<m {
                let gr = pre + (r0 + r) * 2 * hw, ar = act + (r0 + r) * hw
                for i in 0..<hw { ar[i] = silu(gr[i]) * gr[hw + i] }
            }
            linear(act + r0 * hw, rows: m, inFeatures: hw, weight: params[x + "down_proj.weight"], outFeatures: d,
                   bias: nil, into: eo + r0 * d)
        }
        // y = Σ_k w_k·e_k(h) (+ shared(h)).
        let y = a.y.pointer, ids = a.rowOf.pointer, w = a.topWeights.pointer
        Parallel.forChunks(n, minChunk: 32) { _, toks in
            for tok in toks {
                let yr = y + tok * d
                yr.update(repeating: 0, count: d)
                for slot in 0..<k {
                    let wk = w[tok * k + slot], er = eo + Int(ids[tok * k + slot]) * d
                    for i in 0..<d { yr[i] += wk * er[i] }
                }
            }
        }
        if c.hasSharedExpert {
            let hs = c.sharedHidden, s = key + "shared_experts."
            parallelLinear(a.h2.pointer, rows: n, inFeatures: d, weight: params.fused(s), outFeatures: 2 * hs, bias: nil,
                           into: a.sharedPre.pointer)
            let sp = a.sharedPre.pointer, sa = a.sharedAct.pointer
            Parallel.forChunks(n, minChunk: 32) { _, rows in
                for r in rows {
                    let gr = sp + r * 2 * hs, ar = sa + r * hs
                    for i in 0..<hs { ar[i] = silu(gr[i]) * gr[hs + i] }
                }
            }
            parallelLinear(sa, rows: n, inFeatures: hs, weight: params[s + "down_proj.weight"], outFeatures: d, bias: nil,
                           into: y, accumulate: true)
        }
    }

    // MARK: Backward

    /// Accumulates into `grads` the gradient of L = Σ dOut ⊙ output (+ the balance losses of the last forward when
    /// `balanceAlpha > 0`), given `dOut [B, C_out, H, W]` for the batch of the last forward.
    public func backward(dOut: UnsafePointer<Float>) {
        let c = config, d = c.hiddenSize, batch = lastBatch, n = batch * c.tokens, p = params, g = grads
        let bufs = buffers!
        // Final layer.
        unpatchifyBackward(dOut, batch: batch, channels: c.outChannels, side: c.inputSize, patch: c.patchSize,
                           into: bufs.dFinalTokens.pointer)
        linearBackward(x: bufs.hF.pointer, dy: bufs.dFinalTokens.pointer, rows: n, inFeatures: d, outFeatures: c.finalVector,
                       weight: p["final_layer.linear.weight"], dWeight: g["final_layer.linear.weight"],
                       dBias: g["final_layer.linear.bias"], dx: bufs.dH.pointer)
        let dAdaF = bufs.dAda.pointer  // [B, 2D] of the 6D-wide scratch
        dAdaF.update(repeating: 0, count: batch * 2 * d)
        modulateBackward(dh: bufs.dH.pointer, x: bufs.xFinal.pointer, batch: batch, mean: bufs.meanF.pointer,
                         rstd: bufs.rstdF.pointer, ada: bufs.adaF.pointer, dAda: dAdaF, adaWidth: 2 * d, shift: 0, scale: 1,
                         dx: bufs.dX.pointer, accumulate: false)
        linearBackward(x: bufs.siluC.pointer, dy: dAdaF, rows: batch, inFeatures: d, outFeatures: 2 * d,
                       weight: p["final_layer.adaLN_modulation.1.weight"], dWeight: g["final_layer.adaLN_modulation.1.weight"],
                       dBias: g["final_layer.adaLN_modulation.1.bias"], dx: bufs.dSiluC.pointer)

        for l in stride(from: c.depth - 1, through: 0, by: -1) { blockBackward(l, batch: batch, bufs: bufs) }

        // Conditioning: dc = dSiLU(c); label table rows; timestep MLP.
        let dC = bufs.dC.pointer
        for i in 0..<(batch * d) { dC[i] = bufs.dSiluC.pointer[i] * siluDerivative(bufs.c.pointer[i]) }
        let table = g["y_embedder.embedding_table.weight"]
        for b in 0..<batch { addInPlace(table + Int(bufs.labels.pointer[b]) * d, dC + b * d, count: d) }
        linearBackward(x: bufs.tAct.pointer, dy: dC, rows: batch, inFeatures: d, outFeatures: d,
                       weight: p["t_embedder.mlp.2.weight"], dWeight: g["t_embedder.mlp.2.weight"],
                       dBias: g["t_embedder.mlp.2.bias"], dx: bufs.dTAct.pointer)
        for i in 0..<(batch * d) { bufs.dTAct.pointer[i] *= siluDerivative(bufs.tPre.pointer[i]) }
        linearBackward(x: bufs.tFreq.pointer, dy: bufs.dTAct.pointer, rows: batch, inFeatures: TimestepEmbedderShape.frequencyDim,
                       outFeatures: d, weight: p["t_embedder.mlp.0.weight"], dWeight: g["t_embedder.mlp.0.weight"],
                       dBias: g["t_embedder.mlp.0.bias"], dx: nil)
        // Patch embed (pos_embed is fixed).
        linearBackward(x: bufs.patches.pointer, dy: bufs.dX.pointer, rows: n, inFeatures: c.patchVector, outFeatures: d,
                       weight: p["x_embedder.proj.weight"], dWeight: g["x_embedder.proj.weight"],
                       dBias: g["x_embedder.proj.bias"], dx: nil)
    }

    /// dX holds d(block output) on entry and d(block input) on exit; dSiluC accumulates the adaLN path.
    private func blockBackward(_ l: Int, batch: Int, bufs: TrainingBuffers) {
        let c = config, d = c.hiddenSize, n = batch * c.tokens, p = params, g = grads, a = bufs.blocks[l]
        let key = "blocks.\(l).", dX = bufs.dX.pointer, dAda = bufs.dAda.pointer
        dAda.update(repeating: 0, count: batch * 6 * d)

        // x_out = x_mid + gate_mlp ⊙ y.
        gatedResidualBackward(dOut: dX, y: a.y.pointer, batch: batch, ada: a.ada.pointer, dAda: dAda, gate: 5,
                              dy: bufs.dY.pointer)
        if c.isMoE {
            moeBackward(l, batch: batch, a: a, bufs: bufs)
        } else {
            let hw = c.expertHidden
            linearBackward(x: a.fc1Act.pointer, dy: bufs.dY.pointer, rows: n, inFeatures: hw, outFeatures: d,
                           weight: p[key + "mlp.fc2.weight"], dWeight: g[key + "mlp.fc2.weight"],
                           dBias: g[key + "mlp.fc2.bias"], dx: bufs.dFc1.pointer)
            let df = bufs.dFc1.pointer, pre = a.fc1Pre.pointer
            Parallel.forChunks(n * hw, minChunk: 4096) { _, r in for i in r { df[i] *= geluTanhDerivative(pre[i]) } }
            linearBackward(x: a.h2.pointer, dy: df, rows: n, inFeatures: d, outFeatures: hw,
                           weight: p[key + "mlp.fc1.weight"], dWeight: g[key + "mlp.fc1.weight"],
                           dBias: g[key + "mlp.fc1.bias"], dx: bufs.dH.pointer)
        }
        // h2 = LN(x_mid)·(1 + scale_mlp) + shift_mlp: add the LayerNorm path into dX, which becomes d x_mid.
        modulateBackward(dh: bufs.dH.pointer, x: a.xMid.pointer, batch: batch, mean: a.mean2.pointer, rstd: a.rstd2.pointer,
                         ada: a.ada.pointer, dAda: dAda, adaWidth: 6 * d, shift: 3, scale: 4, dx: dX, accumulate: true)

        // x_mid = x_in + gate_msa ⊙ proj(attn).
        gatedResidualBackward(dOut: dX, y: a.yAttn.pointer, batch: batch, ada: a.ada.pointer, dAda: dAda, gate: 2,
                              dy: bufs.dY.pointer)
        let (qkvKey, projKey) = attentionKeys(l)
        linearBackward(x: a.attn.pointer, dy: bufs.dY.pointer, rows: n, inFeatures: d, outFeatures: d,
                       weight: p[projKey + ".weight"], dWeight: g[projKey + ".weight"], dBias: g[projKey + ".bias"],
                       dx: bufs.dAttn.pointer)
        let heads = c.numHeads, hd = c.headDim, t = c.tokens, scale = 1 / Float(hd).squareRoot()
        let dAttn = bufs.dAttn.pointer, dqkv = bufs.dQKV.pointer, scores = bufs.dScores.pointer
        Parallel.forChunks(batch * heads) { worker, pairs in
            for pair in pairs {
                let b = pair / heads, h = pair % heads
                attentionHeadBackward(qkv: a.qkv.pointer + b * t * 3 * d, probs: a.probs.pointer + pair * t * t,
                                      dOut: dAttn + b * t * d, dqkv: dqkv + b * t * 3 * d, tokens: t, dim: d, headDim: hd,
                                      head: h, scale: scale, scratch: scores + worker * t * t)
            }
        }
        if c.useFlashAttn { qkNormBackward(l, rows: n, a: a, dqkv: dqkv, bufs: bufs) }
        linearBackward(x: a.h1.pointer, dy: dqkv, rows: n, inFeatures: d, outFeatures: 3 * d, weight: p[qkvKey + ".weight"],
                       dWeight: g[qkvKey + ".weight"], dBias: g[qkvKey + ".bias"], dx: bufs.dH.pointer)
        modulateBackward(dh: bufs.dH.pointer, x: a.xIn.pointer, batch: batch, mean: a.mean1.pointer, rstd: a.rstd1.pointer,
                         ada: a.ada.pointer, dAda: dAda, adaWidth: 6 * d, shift: 0, scale: 1, dx: dX, accumulate: true)

        // ada = SiLU(c)·Wᵀ + b.
        linearBackward(x: bufs.siluC.pointer, dy: dAda, rows: batch, inFeatures: d, outFeatures: 6 * d,
                       weight: p[key + "adaLN_modulation.1.weight"], dWeight: g[key + "adaLN_modulation.1.weight"],
                       dBias: g[key + "adaLN_modulation.1.bias"], dx: bufs.dSiluC.pointer, accumulateDx: true)
    }

    /// q/k LayerNorm backward in place on the q and k columns of `dqkv` (v passes through unchanged).
    private func qkNormBackward(_ l: Int, rows n: Int, a: BlockActivations, dqkv: UnsafeMutablePointer<Float>,
                                bufs: TrainingBuffers) {
        let c = config, d = c.hiddenSize, heads = c.numHeads, hd = c.headDim
        let names = ["q_norm", "k_norm"]
        let weights = names.map { params["blocks.\(l).attn.\($0).weight"] }
        let partial = bufs.dQKNorm.pointer
        partial.update(repeating: 0, count: bufs.dQKNorm.count)
        let pre = a.qkvPre.pointer, stats = a.qkStats.pointer
        Parallel.forChunks(n, minChunk: 32) { worker, rows in
            let acc = partial + worker * 4 * hd  // [dW_q, dB_q, dW_k, dB_k]
            for r in rows {
                for part in 0..<2 {
                    for h in 0..<heads {
                        let s = stats + (r * heads + h) * 4 + 2 * part
                        let col = r * 3 * d + part * d + h * hd
                        layerNormBackward(x: pre + col, dy: dqkv + col, rows: 1, width: hd, mean: s, rstd: s + 1,
                                          weight: weights[part], dWeight: acc + 2 * part * hd,
                                          dBias: acc + (2 * part + 1) * hd, dx: dqkv + col, accumulate: false)
                    }
                }
            }
        }
        for part in 0..<2 {
            let dw = grads["blocks.\(l).attn.\(names[part]).weight"], db = grads["blocks.\(l).attn.\(names[part]).bias"]
            for w in 0..<(bufs.dQKNorm.count / (4 * hd)) {
                addInPlace(dw, partial + w * 4 * hd + 2 * part * hd, count: hd)
                addInPlace(db, partial + w * 4 * hd + (2 * part + 1) * hd, count: hd)
            }
        }
    }

    /// MoE backward: dY (gradient of the MoE output) → dH (gradient of its input h2), expert, shared and gate
    /// gradients.
    private func moeBackward(_ l: Int, batch: Int, a: BlockActivations, bufs: TrainingBuffers) {
        let c = config, d = c.hiddenSize, n = batch * c.tokens, e = c.numExperts, k = c.numExpertsPerTok
        let hw = c.expertHidden, key = "blocks.\(l).moe.", p = params, g = grads
        let dY = bufs.dY.pointer, dH = bufs.dH.pointer

        // Shared expert (writes dH first), or dH = 0.
        if c.hasSharedExpert {
            let hs = c.sharedHidden, s = key + "shared_experts."
            linearBackward(x: a.sharedAct.pointer, dy: dY, rows: n, inFeatures: hs, outFeatures: d,
                           weight: p[s + "down_proj.weight"], dWeight: g[s + "down_proj.weight"], dBias: nil,
                           dx: bufs.dSharedAct.pointer)
            let sp = a.sharedPre.pointer, dsa = bufs.dSharedAct.pointer, dsp = bufs.dSharedPre.pointer
            Parallel.forChunks(n, minChunk: 32) { _, rows in
                swigluBackward(preActivation: sp + rows.lowerBound * 2 * hs, da: dsa + rows.lowerBound * hs, ldDa: hs,
                               rows: rows.count, width: hs, dFused: dsp + rows.lowerBound * 2 * hs)
            }
            linearBackward(x: a.h2.pointer, dy: dsp, rows: n, inFeatures: d, outFeatures: 2 * hs, weight: p.fused(s),
                           dWeight: g.fused(s), dBias: nil, dx: dH)
        } else {
            dH.update(repeating: 0, count: n * d)
        }

        // Routed rows: dEo[r] = w_r·dY[tok], dw_r = ⟨dY[tok], e(h)[r]⟩.
        let rowOf = a.rowOf.pointer, w = a.topWeights.pointer, eo = a.expertOut.pointer
        let dEo = bufs.dExpertOut.pointer, dW = bufs.dRowWeights.pointer
        Parallel.forChunks(n, minChunk: 32) { _, toks in
            for tok in toks {
                let dyr = dY + tok * d
                for slot in 0..<k {
                    let r = Int(rowOf[tok * k + slot]), er = eo + r * d, der = dEo + r * d, wk = w[tok * k + slot]
                    var dot: Float = 0
                    for i in 0..<d { dot += dyr[i] * er[i]; der[i] = wk * dyr[i] }
                    dW[tok * k + slot] = dot
                }
            }
        }
        // Expert backward, grouped: one worker per group of experts, so each dW block has one writer.
        let pre = a.expertPre.pointer, act = a.expertAct.pointer, gathered = a.gathered.pointer
        let dPre = bufs.dExpertPre.pointer, dAct = bufs.dExpertAct.pointer, dG = bufs.dGathered.pointer
        forExperts(offsets: a.offsets.pointer, experts: e) { ex, rows in
            let x = key + "experts.\(ex).", r0 = rows.lowerBound, m = rows.count
            linearBackwardSerial(x: act + r0 * hw, dy: dEo + r0 * d, rows: m, inFeatures: hw, outFeatures: d,
                                 weight: p[x + "down_proj.weight"], dWeight: g[x + "down_proj.weight"], dx: dAct + r0 * hw)
            swigluBackward(preActivation: pre + r0 * 2 * hw, da: dAct + r0 * hw, ldDa: hw, rows: m, width: hw,
                           dFused: dPre + r0 * 2 * hw)
            linearBackwardSerial(x: gathered + r0 * d, dy: dPre + r0 * 2 * hw, rows: m, inFeatures: d, outFeatures: 2 * hw,
                                 weight: p.fused(x), dWeight: g.fused(x), dx: dG + r0 * d)
        }
        // Gate: d probs from the selected weights and the balance loss; softmax backward; logits = h2·Wgᵀ.
        let probs = a.gateProbs.pointer, dProbs = bufs.dGateProbs.pointer, ids = a.topIds.pointer
        var balanceGrad = [Float](repeating: 0, count: e)
        if balanceAlpha > 0 {
            for i in 0..<e {
                let f = Float(e) * Float(expertCounts[l][i]) / Float(n * k)
                balanceGrad[i] = balanceAlpha * f / Float(n)
            }
        }
        balanceGrad.withUnsafeBufferPointer { bg in
            Parallel.forChunks(n, minChunk: 32) { _, toks in
                for tok in toks {
                    let dp = dProbs + tok * e
                    for i in 0..<e { dp[i] = bg[i] }
                    for slot in 0..<k { dp[Int(ids[tok * k + slot])] += dW[tok * k + slot] }
                    // dH[tok] += Σ_slot d gathered rows.
                    let dh = dH + tok * d
                    for slot in 0..<k { addInPlace(dh, dG + Int(rowOf[tok * k + slot]) * d, count: d) }
                }
                softmaxBackwardInPlace(probs: probs + toks.lowerBound * e, grad: dProbs + toks.lowerBound * e,
                                       rows: toks.count, width: e)
            }
        }
        linearBackward(x: a.h2.pointer, dy: dProbs, rows: n, inFeatures: d, outFeatures: e, weight: p[key + "gate.weight"],
                       dWeight: g[key + "gate.weight"], dBias: nil, dx: dH, accumulateDx: true)
    }

    // MARK: Pieces shared by forward and backward

    /// h = x̂·(1 + scale) + shift per sample (chunks `shift`/`scale` of the sample's adaLN row of width
    /// `adaWidth`), x̂ = LayerNorm without affine (eps 1e-6); the row statistics are kept.
    private func normModulate(_ x: UnsafePointer<Float>, batch: Int, mean: UnsafeMutablePointer<Float>,
                              rstd: UnsafeMutablePointer<Float>, ada: UnsafePointer<Float>, adaWidth: Int,
                              shift: Int, scale: Int, into h: UnsafeMutablePointer<Float>) {
        let t = config.tokens, d = config.hiddenSize, eps = eps
        Parallel.forChunks(batch * t, minChunk: 32) { _, rows in
            layerNormStatistics(x + rows.lowerBound * d, rows: rows.count, width: d, eps: eps,
                                mean: mean + rows.lowerBound, rstd: rstd + rows.lowerBound)
            for r in rows {
                let a = ada + (r / t) * adaWidth, sh = a + shift * d, sc = a + scale * d
                let xr = x + r * d, hr = h + r * d, m = mean[r], s = rstd[r]
                for i in 0..<d { hr[i] = (xr[i] - m) * s * (1 + sc[i]) + sh[i] }
            }
        }
    }

    /// Backward of `normModulate`: dAda[shift] += Σ_t dh, dAda[scale] += Σ_t dh ⊙ x̂, and the LayerNorm backward of
    /// dh ⊙ (1 + scale) into dx. Parallel over whole samples, so each sample's dAda row has one writer.
    private func modulateBackward(dh: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, batch: Int,
                                  mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, ada: UnsafePointer<Float>,
                                  dAda: UnsafeMutablePointer<Float>, adaWidth: Int, shift: Int, scale: Int,
                                  dx: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let t = config.tokens, d = config.hiddenSize
        Parallel.forChunks(batch) { _, samples in
            for b in samples {
                let sc = ada + b * adaWidth + scale * d
                let dsh = dAda + b * adaWidth + shift * d, dsc = dAda + b * adaWidth + scale * d
                for r in (b * t)..<((b + 1) * t) {
                    let xr = x + r * d, dr = dh + r * d, m = mean[r], s = rstd[r]
                    for i in 0..<d {
                        dsh[i] += dr[i]
                        dsc[i] += dr[i] * (xr[i] - m) * s
                        dr[i] *= 1 + sc[i]
                    }
                }
                layerNormBackward(x: x + b * t * d, dy: dh + b * t * d, rows: t, width: d, mean: mean + b * t,
                                  rstd: rstd + b * t, dx: dx + b * t * d, accumulate: accumulate)
            }
        }
    }

    /// out = base + gate ⊙ y per sample (gate = chunk `gate` of the sample's 6D adaLN row).
    private func gatedResidual(base: UnsafePointer<Float>, _ y: UnsafePointer<Float>, batch: Int, ada: UnsafePointer<Float>,
                               gate: Int, into out: UnsafeMutablePointer<Float>) {
        let t = config.tokens, d = config.hiddenSize
        Parallel.forChunks(batch * t, minChunk: 32) { _, rows in
            for r in rows {
                let g = ada + (r / t) * 6 * d + gate * d, br = base + r * d, yr = y + r * d, o = out + r * d
                for i in 0..<d { o[i] = br[i] + g[i] * yr[i] }
            }
        }
    }

    /// Backward of `gatedResidual` for the y branch: dy = dOut ⊙ gate, dAda[gate] += Σ_t dOut ⊙ y.
    private func gatedResidualBackward(dOut: UnsafePointer<Float>, y: UnsafePointer<Float>, batch: Int,
                                       ada: UnsafePointer<Float>, dAda: UnsafeMutablePointer<Float>, gate: Int,
                                       dy: UnsafeMutablePointer<Float>) {
        let t = config.tokens, d = config.hiddenSize
        Parallel.forChunks(batch) { _, samples in
            for b in samples {
                let g = ada + b * 6 * d + gate * d, dg = dAda + b * 6 * d + gate * d
                for r in (b * t)..<((b + 1) * t) {
                    let o = dOut + r * d, yr = y + r * d, dyr = dy + r * d
                    for i in 0..<d { dyr[i] = o[i] * g[i]; dg[i] += o[i] * yr[i] }
                }
            }
        }
    }

    /// Calls `body(expert, rows)` for every expert with rows, the experts split over the workers by
    /// longest-processing-time-first on their row counts (one writer per expert's gradient blocks).
    private func forExperts(offsets: UnsafePointer<Int>, experts e: Int, _ body: (Int, Range<Int>) -> Void) {
        let workers = max(1, min(Parallel.threads, e))
        var load = [Int](repeating: 0, count: workers)
        var owner = [Int](repeating: 0, count: e)
        for ex in (0..<e).sorted(by: { offsets[$0 + 1] - offsets[$0] > offsets[$1 + 1] - offsets[$1] }) {
            let w = load.indices.min(by: { load[$0] < load[$1] })!
            owner[ex] = w; load[w] += offsets[ex + 1] - offsets[ex]
        }
        Parallel.run(workers) { w in
            for ex in 0..<e where owner[ex] == w && offsets[ex + 1] > offsets[ex] {
                body(ex, offsets[ex]..<offsets[ex + 1])
            }
        }
    }
}

/// Transpose of `unpatchify`: gathers `dOut [B, C, H, W]` into token rows `[B·T, p·p·C]` (channel fastest).
func unpatchifyBackward(_ dOut: UnsafePointer<Float>, batch: Int, channels: Int, side: Int, patch p: Int,
                        into tokens: UnsafeMutablePointer<Float>) {
    let g = side / p, vec = channels * p * p
    for b in 0..<batch {
        for r in 0..<g {
            for col in 0..<g {
                let tok = tokens + ((b * g + r) * g + col) * vec
                for pi in 0..<p {
                    for qi in 0..<p {
                        for ch in 0..<channels {
                            tok[(pi * p + qi) * channels + ch] = dOut[((b * channels + ch) * side + r * p + pi) * side + col * p + qi]
                        }
                    }
                }
            }
        }
    }
}
