"""Independent numpy reference for the DiT-MoE and dense DiT forward passes.

Written from a prose description of upstream `models.py` (feizc/DiT-MoE bd34bbb, facebookresearch/DiT), not from the
Swift engine. Readability over speed: loops over samples, heads and experts are explicit. Compute dtype defaults to
float64; passing dtype=np.float32 runs the same code in float32, which is used to estimate how far an fp32 engine may
legitimately drift from the fp64 truth.

Conventions
- Weights: dict name -> ndarray with upstream state-dict key names (`weight_shapes`). nn.Linear weights are
  [out, in] and y = x @ W.T + b.
- Config: dict with the upstream constructor argument names (input_size, patch_size, in_channels, hidden_size,
  depth, num_heads, mlp_ratio, num_classes, learn_sigma, num_experts, num_experts_per_tok, use_flash_attn) plus
  "dense": True for the dense DiT baseline.
- x: [B, C, H, W] latents; t: [B] timesteps (float); y: [B] integer labels, num_classes = the null class.
- Tokens are [B, T, D], token m = r·G + c over the patch grid (G = H/p), row-major.
"""

import math

import numpy as np

LN_EPS = 1e-6            # every LayerNorm in the model (norm1, norm2, final norm, flash q/k norm)
FREQ_DIM = 256           # timestep embedding frequency dim (upstream TimestepEmbedder)
MAX_PERIOD = 10000.0


# ----------------------------------------------------------------------------------------------------------------
# Elementwise pieces

def silu(x):
    return x / (1.0 + np.exp(-x))


def gelu_tanh(x):
    """tanh-approximate GELU: 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))) (dense baseline only: timm Mlp)."""
    c = x.dtype.type(math.sqrt(2.0 / math.pi))
    return 0.5 * x * (1.0 + np.tanh(c * (x + 0.044715 * x * x * x)))


def softmax(x, axis=-1):
    z = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def layer_norm(x, weight=None, bias=None, eps=LN_EPS):
    """LayerNorm over the last axis; biased variance as in torch; affine only if weight/bias are given."""
    mean = np.mean(x, axis=-1, keepdims=True)
    var = np.mean((x - mean) ** 2, axis=-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + x.dtype.type(eps))
    if weight is not None:
        y = y * weight + bias
    return y


def linear(x, weight, bias=None):
    """nn.Linear with a [out, in] weight."""
    y = x @ weight.T
    if bias is not None:
        y = y + bias
    return y


def modulate(h, shift, scale):
    """h·(1 + scale) + shift, shift/scale broadcast over tokens."""
    return h * (1.0 + scale) + shift


# ----------------------------------------------------------------------------------------------------------------
# Embeddings

def pos_embed_2d(hidden_size, grid_size):
    """Fixed 2-D sin-cos table [T, D] (upstream get_2d_sincos_pos_embed, from MAE), float64 math cast to float32.

    Dims [0, D/2) encode the column as [sin(col·ω), cos(col·ω)], dims [D/2, D) the row likewise,
    ω_k = 10000^(−k/Q), Q = D/4.
    """
    assert hidden_size % 4 == 0, "pos_embed needs hidden_size divisible by 4"
    quarter = hidden_size // 4
    omega = MAX_PERIOD ** (-np.arange(quarter, dtype=np.float64) / quarter)
    table = np.zeros((grid_size * grid_size, hidden_size), dtype=np.float64)
    for m in range(grid_size * grid_size):
        col = m % grid_size
        row = m // grid_size
        table[m, 0 * quarter:1 * quarter] = np.sin(col * omega)
        table[m, 1 * quarter:2 * quarter] = np.cos(col * omega)
        table[m, 2 * quarter:3 * quarter] = np.sin(row * omega)
        table[m, 3 * quarter:4 * quarter] = np.cos(row * omega)
    return table.astype(np.float32)


def timestep_frequency_args(t):
    """The arguments a = t·freqs [B, 128] exactly as float32 torch forms them (t is cast to float32 first).

    freqs_k = exp(−ln(10000)·k/128) is rounded to float32, t is rounded to float32, and their product is rounded
    to float32 (a product of two float32 values is exact in float64, so this equals the float32 multiply).
    This is the one place the reference emulates float32 on purpose: with t = 999 an unrounded argument differs
    from the float32 one by up to ~3e-5 rad, which is the upstream model's actual input.
    """
    half = FREQ_DIM // 2
    freqs32 = np.exp(-math.log(MAX_PERIOD) * np.arange(half, dtype=np.float64) / half).astype(np.float32)
    t32 = np.asarray(t, dtype=np.float32)
    return (t32.astype(np.float64)[:, None] * freqs32.astype(np.float64)[None, :]).astype(np.float32)


def timestep_embedding(t, dtype=np.float64):
    """Raw sinusoidal embedding [B, 256] = [cos(a), sin(a)], cos first (the reverse of pos_embed)."""
    a = timestep_frequency_args(t).astype(dtype)
    return np.concatenate([np.cos(a), np.sin(a)], axis=1)


def patch_embed(x, weight, bias):
    """Conv2d(kernel = stride = p) as an explicit loop over patches.

    x [B, C, H, W], weight [D, C, p, p] -> tokens [B, T, D]. Each patch flattens channel-major
    (channel, patch-row, patch-col), matching weight.reshape(D, C·p·p).
    """
    batch, channels, height, width = x.shape
    dim, _, p, _ = weight.shape
    grid_h, grid_w = height // p, width // p
    w_flat = weight.reshape(dim, channels * p * p)
    tokens = np.zeros((batch, grid_h * grid_w, dim), dtype=x.dtype)
    for b in range(batch):
        for r in range(grid_h):
            for c in range(grid_w):
                patch = x[b, :, r * p:(r + 1) * p, c * p:(c + 1) * p].reshape(channels * p * p)
                tokens[b, r * grid_w + c] = w_flat @ patch + bias
    return tokens


def unpatchify(tokens, patch_size, out_channels, height, width):
    """[B, T, p²·C_out] -> [B, C_out, H, W]; per-token vector ordered [pi][qi][c], channel fastest (patch embedding
    flattens channel slowest)."""
    batch = tokens.shape[0]
    p = patch_size
    grid_w = width // p
    img = np.zeros((batch, out_channels, height, width), dtype=tokens.dtype)
    for b in range(batch):
        for m in range(tokens.shape[1]):
            r, col = divmod(m, grid_w)
            vec = tokens[b, m].reshape(p, p, out_channels)       # [pi][qi][c]
            for ch in range(out_channels):
                img[b, ch, r * p:(r + 1) * p, col * p:(col + 1) * p] = vec[:, :, ch]
    return img


# ----------------------------------------------------------------------------------------------------------------
# Attention: timm `Attention` (qkv/proj) or the flash layout (Wqkv/out_proj + affine q/k LayerNorm)

def attention(h, w, prefix, num_heads, flash):
    """Multi-head self-attention over one sample's tokens h [T, D].

    timm layout: qkv / proj. flash layout: Wqkv / out_proj plus affine LayerNorm over hd on q and k, the same
    [hd] parameters shared by all heads. Columns of the 3D projection are [q | k | v], head j owning
    cols j·hd..(j+1)·hd inside each. Scale 1/sqrt(hd), no mask.
    """
    tokens, dim = h.shape
    hd = dim // num_heads
    if flash:
        qkv = linear(h, w[prefix + "Wqkv.weight"], w[prefix + "Wqkv.bias"])
    else:
        qkv = linear(h, w[prefix + "qkv.weight"], w[prefix + "qkv.bias"])
    q_all, k_all, v_all = qkv[:, 0:dim], qkv[:, dim:2 * dim], qkv[:, 2 * dim:3 * dim]
    scale = h.dtype.type(1.0 / math.sqrt(hd))
    heads_out = []
    for j in range(num_heads):
        q = q_all[:, j * hd:(j + 1) * hd]
        k = k_all[:, j * hd:(j + 1) * hd]
        v = v_all[:, j * hd:(j + 1) * hd]
        if flash:
            q = layer_norm(q, w[prefix + "q_norm.weight"], w[prefix + "q_norm.bias"])
            k = layer_norm(k, w[prefix + "k_norm.weight"], w[prefix + "k_norm.bias"])
        probs = softmax((q @ k.T) * scale, axis=-1)
        heads_out.append(probs @ v)
    concat = np.concatenate(heads_out, axis=1)
    if flash:
        return linear(concat, w[prefix + "out_proj.weight"], w[prefix + "out_proj.bias"])
    return linear(concat, w[prefix + "proj.weight"], w[prefix + "proj.bias"])


# ----------------------------------------------------------------------------------------------------------------
# MoE: upstream SparseMoeBlock (softmax gate, top-K, SwiGLU experts, shared expert)

def swiglu(h, w, prefix):
    """down(SiLU(gate_proj(h)) ⊙ up_proj(h)), no biases."""
    return linear(silu(linear(h, w[prefix + "gate_proj.weight"])) * linear(h, w[prefix + "up_proj.weight"]),
                  w[prefix + "down_proj.weight"])


def swiglu_split(h, w, prefix, parts=2):
    """pretraining_tp-style SwiGLU: intermediate split into `parts` slices, partial down-projections summed.
    Mathematically identical to swiglu (only the fp summation order differs); used only by the self-check."""
    g, u, d = w[prefix + "gate_proj.weight"], w[prefix + "up_proj.weight"], w[prefix + "down_proj.weight"]
    inter = g.shape[0]
    step = inter // parts
    slices = [slice(i * step, (i + 1) * step) for i in range(parts)]
    gate = np.concatenate([h @ g[s].T for s in slices], axis=1)
    up = np.concatenate([h @ u[s].T for s in slices], axis=1)
    act = silu(gate) * up
    return sum(act[:, s] @ d[:, s].T for s in slices)


def route(probs, top_k):
    """Top-k of each row of probs [N, E] by value, ties to the lower expert index.

    Returns (experts [N, K] int, weights [N, K]) with slots sorted by weight descending. Weights are the raw
    softmax probabilities: NO renormalisation (upstream norm_topk_prob=False).
    """
    n, num_experts = probs.shape
    experts = np.zeros((n, top_k), dtype=np.int64)
    weights = np.zeros((n, top_k), dtype=probs.dtype)
    for i in range(n):
        order = sorted(range(num_experts), key=lambda e: (-probs[i, e], e))
        experts[i] = order[:top_k]
        weights[i] = probs[i, order[:top_k]]
    return experts, weights


def moe(h, w, prefix, num_experts, top_k):
    """SparseMoeBlock on h [N, D]: routed experts grouped by expert id (ascending), then the shared expert.

    Returns (y [N, D], experts [N, K], weights [N, K], probs [N, E]).
    """
    probs = softmax(linear(h, w[prefix + "gate.weight"]), axis=-1)
    experts, weights = route(probs, top_k)
    y = np.zeros_like(h)
    for e in range(num_experts):
        rows, slots = np.nonzero(experts == e)
        if rows.size == 0:
            continue
        out = swiglu(h[rows], w, f"{prefix}experts.{e}.")
        y[rows] += weights[rows, slots][:, None] * out      # each token appears at most once per expert
    y += swiglu(h, w, prefix + "shared_experts.")
    return y, experts, weights, probs


def moe_bruteforce(h, w, prefix, num_experts, top_k):
    """Per-token loop version of moe() used by the self-check (no grouping, no shared code paths for routing)."""
    y = np.zeros_like(h)
    gate_w = w[prefix + "gate.weight"]
    for i in range(h.shape[0]):
        logits = gate_w @ h[i]
        p = np.exp(logits - logits.max())
        p = p / p.sum()
        chosen = []
        remaining = list(range(num_experts))
        for _ in range(top_k):
            best = remaining[0]
            for e in remaining:
                if p[e] > p[best]:          # strict: an exact tie keeps the lower index
                    best = e
            chosen.append(best)
            remaining.remove(best)
        acc = np.zeros(h.shape[1], dtype=h.dtype)
        for e in chosen:
            acc += p[e] * swiglu(h[i:i + 1], w, f"{prefix}experts.{e}.")[0]
        acc += swiglu(h[i:i + 1], w, prefix + "shared_experts.")[0]
        y[i] = acc
    return y


def dense_mlp(h, w, prefix):
    """timm Mlp: fc1 (bias), tanh-GELU, fc2 (bias)."""
    return linear(gelu_tanh(linear(h, w[prefix + "fc1.weight"], w[prefix + "fc1.bias"])),
                  w[prefix + "fc2.weight"], w[prefix + "fc2.bias"])


# ----------------------------------------------------------------------------------------------------------------
# Whole model

def out_channels(cfg):
    return 2 * cfg["in_channels"] if cfg.get("learn_sigma", True) else cfg["in_channels"]


def forward(weights, cfg, x, t, y, dtype=np.float64, moe_fn=moe):
    """DiT-MoE (or dense DiT if cfg["dense"]) forward.

    Returns (out [B, C_out, H, W], routing) where routing is a list per layer of dicts with "experts" [B·T, K],
    "weights" [B·T, K] and "probs" [B·T, E] in (batch, token) order; empty for the dense model.
    """
    w = {k: np.asarray(v).astype(dtype) for k, v in weights.items()}
    x = np.asarray(x).astype(dtype)
    dense = bool(cfg.get("dense", False))
    flash = bool(cfg.get("use_flash_attn", False)) and not dense
    p = cfg["patch_size"]
    dim = cfg["hidden_size"]
    heads = cfg["num_heads"]
    batch, _, height, width = x.shape
    c_out = out_channels(cfg)

    # input path: patch embed + pos_embed, c = t_emb + y_emb
    tokens = patch_embed(x, w["x_embedder.proj.weight"], w["x_embedder.proj.bias"])
    tokens = tokens + w["pos_embed"][0]
    t_freq = timestep_embedding(t, dtype)
    t_emb = linear(silu(linear(t_freq, w["t_embedder.mlp.0.weight"], w["t_embedder.mlp.0.bias"])),
                   w["t_embedder.mlp.2.weight"], w["t_embedder.mlp.2.bias"])
    y_emb = w["y_embedder.embedding_table.weight"][np.asarray(y, dtype=np.int64)]
    c = t_emb + y_emb                                                   # [B, D]

    routing = []
    for i in range(cfg["depth"]):
        pre = f"blocks.{i}."
        ada = linear(silu(c), w[pre + "adaLN_modulation.1.weight"], w[pre + "adaLN_modulation.1.bias"])
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = [
            ada[:, k * dim:(k + 1) * dim] for k in range(6)]
        # attention residual, per sample
        for b in range(batch):
            h = modulate(layer_norm(tokens[b]), shift_msa[b], scale_msa[b])
            tokens[b] = tokens[b] + gate_msa[b] * attention(h, w, pre + "attn.", heads, flash)
        # MLP / MoE residual over all B·T tokens at once (tokens are independent)
        h = np.concatenate([modulate(layer_norm(tokens[b]), shift_mlp[b], scale_mlp[b]) for b in range(batch)])
        if dense:
            mlp_out = dense_mlp(h, w, pre + "mlp.")
        else:
            result = moe_fn(h, w, pre + "moe.", cfg["num_experts"], cfg["num_experts_per_tok"])
            if isinstance(result, tuple):
                mlp_out, experts, gate_weights, probs = result
                routing.append({"experts": experts, "weights": gate_weights, "probs": probs})
            else:
                mlp_out = result
        mlp_out = mlp_out.reshape(batch, -1, dim)
        tokens = tokens + gate_mlp[:, None, :] * mlp_out

    # final layer: adaLN, LayerNorm, modulate, linear, unpatchify
    ada = linear(silu(c), w["final_layer.adaLN_modulation.1.weight"], w["final_layer.adaLN_modulation.1.bias"])
    shift, scale = ada[:, 0:dim], ada[:, dim:2 * dim]
    final = np.stack([linear(modulate(layer_norm(tokens[b]), shift[b], scale[b]),
                             w["final_layer.linear.weight"], w["final_layer.linear.bias"]) for b in range(batch)])
    return unpatchify(final, p, c_out, height, width), routing


def forward_with_cfg(weights, cfg, x, t, y, cfg_scale, dtype=np.float64):
    """Upstream forward_with_cfg (inherited from DiT): batch 2n; the model runs on [x[:n], x[:n]] with t and y as
    given; guidance on channels 0..2 only, g = u + s·(c − u); each half gets cat(g, its own channels 3..)."""
    x = np.asarray(x)
    n = x.shape[0] // 2
    assert x.shape[0] == 2 * n, "forward_with_cfg needs an even batch"
    combined = np.concatenate([x[:n], x[:n]], axis=0)
    out, routing = forward(weights, cfg, combined, t, y, dtype)
    cond, uncond = out[:n], out[n:]
    guided = uncond[:, :3] + cfg_scale * (cond[:, :3] - uncond[:, :3])
    result = np.concatenate([np.concatenate([guided, cond[:, 3:]], axis=1),
                             np.concatenate([guided, uncond[:, 3:]], axis=1)], axis=0)
    return result, routing


# ----------------------------------------------------------------------------------------------------------------
# Weight shapes and random initialisation

def weight_shapes(cfg):
    """Ordered dict name -> shape of every tensor in the upstream state dict."""
    dim = cfg["hidden_size"]
    p = cfg["patch_size"]
    cin = cfg["in_channels"]
    grid = cfg["input_size"] // p
    hd = dim // cfg["num_heads"]
    inter = int(cfg.get("mlp_ratio", 4.0) * dim)
    dense = bool(cfg.get("dense", False))
    flash = bool(cfg.get("use_flash_attn", False)) and not dense
    shapes = {
        "x_embedder.proj.weight": (dim, cin, p, p),
        "x_embedder.proj.bias": (dim,),
        "pos_embed": (1, grid * grid, dim),
        "t_embedder.mlp.0.weight": (dim, FREQ_DIM),
        "t_embedder.mlp.0.bias": (dim,),
        "t_embedder.mlp.2.weight": (dim, dim),
        "t_embedder.mlp.2.bias": (dim,),
        "y_embedder.embedding_table.weight": (cfg["num_classes"] + 1, dim),
    }
    for i in range(cfg["depth"]):
        pre = f"blocks.{i}."
        shapes[pre + "adaLN_modulation.1.weight"] = (6 * dim, dim)
        shapes[pre + "adaLN_modulation.1.bias"] = (6 * dim,)
        if flash:
            shapes[pre + "attn.Wqkv.weight"] = (3 * dim, dim)
            shapes[pre + "attn.Wqkv.bias"] = (3 * dim,)
            shapes[pre + "attn.q_norm.weight"] = (hd,)
            shapes[pre + "attn.q_norm.bias"] = (hd,)
            shapes[pre + "attn.k_norm.weight"] = (hd,)
            shapes[pre + "attn.k_norm.bias"] = (hd,)
            shapes[pre + "attn.out_proj.weight"] = (dim, dim)
            shapes[pre + "attn.out_proj.bias"] = (dim,)
        else:
            shapes[pre + "attn.qkv.weight"] = (3 * dim, dim)
            shapes[pre + "attn.qkv.bias"] = (3 * dim,)
            shapes[pre + "attn.proj.weight"] = (dim, dim)
            shapes[pre + "attn.proj.bias"] = (dim,)
        if dense:
            shapes[pre + "mlp.fc1.weight"] = (inter, dim)
            shapes[pre + "mlp.fc1.bias"] = (inter,)
            shapes[pre + "mlp.fc2.weight"] = (dim, inter)
            shapes[pre + "mlp.fc2.bias"] = (dim,)
        else:
            shapes[pre + "moe.gate.weight"] = (cfg["num_experts"], dim)
            for e in range(cfg["num_experts"]):
                shapes[f"{pre}moe.experts.{e}.gate_proj.weight"] = (inter, dim)
                shapes[f"{pre}moe.experts.{e}.up_proj.weight"] = (inter, dim)
                shapes[f"{pre}moe.experts.{e}.down_proj.weight"] = (dim, inter)
            shapes[pre + "moe.shared_experts.gate_proj.weight"] = (2 * dim, dim)
            shapes[pre + "moe.shared_experts.up_proj.weight"] = (2 * dim, dim)
            shapes[pre + "moe.shared_experts.down_proj.weight"] = (dim, 2 * dim)
    shapes["final_layer.adaLN_modulation.1.weight"] = (2 * dim, dim)
    shapes["final_layer.adaLN_modulation.1.bias"] = (2 * dim,)
    shapes["final_layer.linear.weight"] = (p * p * out_channels(cfg), dim)
    shapes["final_layer.linear.bias"] = (p * p * out_channels(cfg),)
    return shapes


# Gate weight gain. The modulated MoE input has rms ≈ 1.5–2, so gain 1 already gives a peaked softmax (mean top-1
# probability ≈ 0.6 for E = 4); larger gains push the 2nd and 3rd probabilities together near 0 and shrink the
# absolute top-k margins the fixtures need.
GATE_GAIN = 1.0


def random_weights(cfg, rng):
    """Non-degenerate random float32 weights: matrices ~ N(0, 1/fan_in) (gate ×GATE_GAIN), biases ~ N(0, 0.1²),
    q/k-norm weight ~ 1 + N(0, 0.2²), label table ~ N(0, 1), adaLN and final layer NOT zero; pos_embed = sin-cos."""
    weights = {}
    for name, shape in weight_shapes(cfg).items():
        if name == "pos_embed":
            arr = pos_embed_2d(cfg["hidden_size"], cfg["input_size"] // cfg["patch_size"])[None]
        elif name.endswith("norm.weight"):
            arr = 1.0 + 0.2 * rng.standard_normal(shape)
        elif name.endswith(".bias"):
            arr = 0.1 * rng.standard_normal(shape)
        elif name == "y_embedder.embedding_table.weight":
            arr = rng.standard_normal(shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            gain = GATE_GAIN if name.endswith("moe.gate.weight") else 1.0
            arr = gain * rng.standard_normal(shape) / math.sqrt(fan_in)
        weights[name] = np.asarray(arr, dtype=np.float32)
    return weights


def topk_margins(routing, top_k):
    """(min gap between the K-th and (K+1)-th probability, min gap between any two consecutive of the top K+1)
    over all tokens and layers. The first guards routing sets, the second also guards slot order."""
    set_margin, order_margin = math.inf, math.inf
    for layer in routing:
        sorted_p = -np.sort(-layer["probs"], axis=1)
        gaps = sorted_p[:, :top_k] - sorted_p[:, 1:top_k + 1]
        set_margin = min(set_margin, float(gaps[:, top_k - 1].min()))
        order_margin = min(order_margin, float(gaps.min()))
    return set_margin, order_margin
