#!/usr/bin/env python3
"""Write gradient fixtures for the training engine into Tests/TrainingTests/Fixtures/<case>.safetensors.

    python3 tools/make_train_fixtures.py                    # self-checks, then writes every case
    python3 tools/make_train_fixtures.py --check-upstream   # also compares with the upstream PyTorch code

The model and the loss are written here in plain torch (nothing of upstream is imported when writing), mirroring
feizc/DiT-MoE `models.py` (MoE cases) and facebookresearch/DiT `models.py` (the dense case), and
`diffusion/gaussian_diffusion.py` `training_losses` with `create_diffusion("")`: 1000 linear betas 1e-4..0.02,
epsilon prediction, LEARNED_RANGE variance, loss type MSE (mse + vb, vb not rescaled).

Everything is computed in float64. Parameters, x0 and noise are drawn, then rounded to float32 values before use,
so a float32 engine loads exactly the values the reference used. Outputs are stored as F32 (integers as I64).

Objective (d total / d param is what `grad.<key>` holds):
    total = mean_b(mse_b + vb_b) + sum over layers of L_bal
    mse_b  = mean over C,H,W of (noise - eps)^2
    vb_b   = KL(q(x_{t-1}|x_t,x0) || p(x_{t-1}|x_t)) / ln 2 (mean over C,H,W), or at t == 0 the discretized
             Gaussian decoder NLL / ln 2; the mean of p uses eps.detach(), only the variance output v is live
    L_bal  = alpha * sum_i P_i * f_i, P_i = mean over the B*T tokens of softmax_i, f_i = E * c_i / (B*T*K),
             c_i = number of (token, slot) pairs routed to expert i (a constant); alpha = 0.01
Top-k weights are the softmax probabilities of the selected experts, not renormalised; gradients reach the gate
through them and through P_i; the top-k indices are constants.

Each case is reseeded until the top-(K+1) softmax probabilities of every token in every layer are at least MARGIN
apart, so float32 rounding cannot change a routing set or the slot order, and until every t == 0 decoder bin
probability is at least MIN_BIN_PROB (so no clamp is active and float32 cancellation stays small).
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import types

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "Tests", "TrainingTests", "Fixtures")
UPSTREAM_MOE_GIT = "/work/.mirror/feizc+DiT-MoE/repo"
UPSTREAM_DENSE_GIT = "/work/.mirror/facebookresearch+DiT/repo"
MARGIN = 1e-3
# smallest allowed t == 0 bin probability (the argument of the decoder log): a float32 CDF difference carries an
# absolute error near 6e-8, so this bounds the per-element relative error of the NLL near 6e-5
MIN_BIN_PROB = 1e-3
ALPHA = 0.01
FREQ_DIM = 256
NUM_TIMESTEPS = 1000
B = 6
DT = torch.float64

MOE = dict(input_size=4, patch_size=2, in_channels=2, hidden_size=32, depth=2, num_heads=4, mlp_ratio=4,
           num_classes=5, learn_sigma=True, num_experts=4, num_experts_per_tok=2, use_flash_attn=False,
           dense=False, n_shared_experts=2)
CASES = {
    "moe_timm": dict(cfg=MOE, seed=11),
    "moe_flash": dict(cfg=dict(MOE, use_flash_attn=True), seed=21),
    "moe_noshared": dict(cfg=dict(MOE, n_shared_experts=0), seed=31),
    "dense": dict(cfg={k: v for k, v in MOE.items()
                       if k not in ("num_experts", "num_experts_per_tok", "use_flash_attn", "n_shared_experts")}
                  | dict(dense=True), seed=41),
    "moe_p1": dict(cfg=dict(MOE, input_size=4, patch_size=1, in_channels=1, hidden_size=16, depth=1, num_heads=2,
                            num_experts=8, num_experts_per_tok=2, num_classes=10), seed=51),
}
# t includes 0 (decoder NLL branch), 1 (posterior_log_variance_clipped[0] == [1]) and 999; one label is the null class.
T_VALUES = [0, 999, 1, 500, 37, 250]


# ----------------------------------------------------------------------------------------------------------------
# Diffusion schedule (float64, as upstream GaussianDiffusion.__init__)

def schedule():
    betas = np.linspace(1e-4, 0.02, NUM_TIMESTEPS, dtype=np.float64)
    alphas = 1.0 - betas
    ab = np.cumprod(alphas)
    ab_prev = np.append(1.0, ab[:-1])
    post_var = betas * (1.0 - ab_prev) / (1.0 - ab)
    return dict(
        betas=betas,
        sqrt_ab=np.sqrt(ab), sqrt_1m_ab=np.sqrt(1.0 - ab),
        sqrt_recip_ab=np.sqrt(1.0 / ab), sqrt_recipm1_ab=np.sqrt(1.0 / ab - 1.0),
        post_logvar_clipped=np.log(np.append(post_var[1], post_var[1:])),
        coef1=betas * np.sqrt(ab_prev) / (1.0 - ab),
        coef2=(1.0 - ab_prev) * np.sqrt(alphas) / (1.0 - ab),
        log_betas=np.log(betas),
    )


# ----------------------------------------------------------------------------------------------------------------
# Parameters

def param_shapes(cfg):
    """Upstream state-dict keys and shapes, in upstream registration order."""
    D, C, p, hd = cfg["hidden_size"], cfg["in_channels"], cfg["patch_size"], cfg["hidden_size"] // cfg["num_heads"]
    T = (cfg["input_size"] // p) ** 2
    out_c = 2 * C if cfg["learn_sigma"] else C
    hidden = int(cfg["mlp_ratio"] * D)
    s = {
        "pos_embed": (1, T, D),
        "x_embedder.proj.weight": (D, C, p, p), "x_embedder.proj.bias": (D,),
        "t_embedder.mlp.0.weight": (D, FREQ_DIM), "t_embedder.mlp.0.bias": (D,),
        "t_embedder.mlp.2.weight": (D, D), "t_embedder.mlp.2.bias": (D,),
        "y_embedder.embedding_table.weight": (cfg["num_classes"] + 1, D),
    }
    for i in range(cfg["depth"]):
        b = f"blocks.{i}."
        if cfg.get("use_flash_attn"):
            s.update({b + "attn.Wqkv.weight": (3 * D, D), b + "attn.Wqkv.bias": (3 * D,),
                      b + "attn.q_norm.weight": (hd,), b + "attn.q_norm.bias": (hd,),
                      b + "attn.k_norm.weight": (hd,), b + "attn.k_norm.bias": (hd,),
                      b + "attn.out_proj.weight": (D, D), b + "attn.out_proj.bias": (D,)})
        else:
            s.update({b + "attn.qkv.weight": (3 * D, D), b + "attn.qkv.bias": (3 * D,),
                      b + "attn.proj.weight": (D, D), b + "attn.proj.bias": (D,)})
        if cfg["dense"]:
            s.update({b + "mlp.fc1.weight": (hidden, D), b + "mlp.fc1.bias": (hidden,),
                      b + "mlp.fc2.weight": (D, hidden), b + "mlp.fc2.bias": (D,)})
        else:
            for e in range(cfg["num_experts"]):
                pe = f"{b}moe.experts.{e}."
                s.update({pe + "gate_proj.weight": (hidden, D), pe + "up_proj.weight": (hidden, D),
                          pe + "down_proj.weight": (D, hidden)})
            s[b + "moe.gate.weight"] = (cfg["num_experts"], D)
            if cfg["n_shared_experts"] > 0:
                w = cfg["n_shared_experts"] * D
                ps = b + "moe.shared_experts."
                s.update({ps + "gate_proj.weight": (w, D), ps + "up_proj.weight": (w, D),
                          ps + "down_proj.weight": (D, w)})
        s.update({b + "adaLN_modulation.1.weight": (6 * D, D), b + "adaLN_modulation.1.bias": (6 * D,)})
    s.update({"final_layer.linear.weight": (p * p * out_c, D), "final_layer.linear.bias": (p * p * out_c,),
              "final_layer.adaLN_modulation.1.weight": (2 * D, D),
              "final_layer.adaLN_modulation.1.bias": (2 * D,)})
    return s


def sincos_pos_embed(D, grid):
    """MAE 2-D sin-cos table [grid*grid, D]: first half encodes the column (w) index, second half the row (h) index,
    each half is [sin, cos] of pos * 10000^(-k/(D/4)), k = 0..D/4-1; rows in row-major patch order."""
    col, row = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64))  # [grid, grid]
    def one(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)
    return np.concatenate([one(D // 2, col), one(D // 2, row)], axis=1)


def init_params(cfg, rng):
    """Non-zero random values everywhere (upstream zero-inits adaLN and the final layer; here every gradient must be
    non-zero). Weights ~ N(0, 1/fan_in); biases ~ N(0, 0.05^2); LayerNorm weight ~ 1 + N(0, 0.1^2), bias ~ N(0, 0.1^2);
    label table ~ N(0, 0.5^2). Rounded to float32 values."""
    params = {}
    for k, shape in param_shapes(cfg).items():
        if k == "pos_embed":
            v = sincos_pos_embed(shape[2], int(round(math.sqrt(shape[1]))))[None]
        elif k.endswith("norm.weight"):
            v = 1.0 + 0.1 * rng.standard_normal(shape)
        elif k.endswith("norm.bias"):
            v = 0.1 * rng.standard_normal(shape)
        elif k == "y_embedder.embedding_table.weight":
            v = 0.5 * rng.standard_normal(shape)
        elif k.endswith(".bias"):
            v = 0.05 * rng.standard_normal(shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            v = rng.standard_normal(shape) / math.sqrt(fan_in)
        params[k] = torch.tensor(np.asarray(v, dtype=np.float32), dtype=DT)
    return params


# ----------------------------------------------------------------------------------------------------------------
# Model (plain torch, float64)

def linear(x, P, name, bias=True):
    return F.linear(x, P[name + ".weight"], P[name + ".bias"] if bias else None)


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def layer_norm(x, eps=1e-6):
    return F.layer_norm(x, x.shape[-1:], eps=eps)


def timestep_embedding(t, dim=FREQ_DIM, max_period=10000):
    """[cos(t*f_k), sin(t*f_k)], f_k = exp(-ln(max_period) * k / (dim/2)), k = 0..dim/2-1."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=DT) / half)
    args = t.to(DT)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def swiglu(h, P, name):
    return F.linear(F.silu(F.linear(h, P[name + ".gate_proj.weight"])) * F.linear(h, P[name + ".up_proj.weight"]),
                    P[name + ".down_proj.weight"])


def attention(h, P, b, cfg):
    Bn, T, D = h.shape
    H = cfg["num_heads"]; hd = D // H
    if cfg.get("use_flash_attn"):
        qkv = linear(h, P, b + "attn.Wqkv").view(Bn, T, 3, H, hd)
        q, k, v = qkv.unbind(2)                                            # [B, T, H, hd]
        q = F.layer_norm(q, (hd,), P[b + "attn.q_norm.weight"], P[b + "attn.q_norm.bias"], eps=1e-6)
        k = F.layer_norm(k, (hd,), P[b + "attn.k_norm.weight"], P[b + "attn.k_norm.bias"], eps=1e-6)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))                   # [B, H, T, hd]
        out_name = b + "attn.out_proj"
    else:
        qkv = linear(h, P, b + "attn.qkv").view(Bn, T, 3, H, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out_name = b + "attn.proj"
    a = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(hd), dim=-1)
    o = (a @ v).transpose(1, 2).reshape(Bn, T, D)
    return linear(o, P, out_name)


def moe(h, P, b, cfg, record):
    Bn, T, D = h.shape
    E, K = cfg["num_experts"], cfg["num_experts_per_tok"]
    x = h.reshape(-1, D)
    scores = torch.softmax(F.linear(x, P[b + "moe.gate.weight"]), dim=-1)   # [N, E]
    w, idx = torch.topk(scores, K, dim=-1, sorted=True)                     # descending weight
    mix = torch.zeros_like(scores).scatter(1, idx, w)                        # top-k probabilities, 0 elsewhere
    y = sum(mix[:, e:e + 1] * swiglu(x, P, f"{b}moe.experts.{e}") for e in range(E))
    if cfg["n_shared_experts"] > 0:
        y = y + swiglu(x, P, b + "moe.shared_experts")
    N = x.shape[0]
    counts = torch.bincount(idx.reshape(-1), minlength=E).to(DT)
    f = E * counts / (N * K)
    bal = ALPHA * (scores.mean(0) * f).sum()
    record.append(dict(scores=scores.detach(), experts=idx, weights=w.detach(), balance=bal))
    return y.view(Bn, T, D)


def dit_forward(P, cfg, x, t, y):
    """Returns the model output [B, 2C, H, W] and, per MoE layer, the routing record."""
    p, D = cfg["patch_size"], cfg["hidden_size"]
    h = F.conv2d(x, P["x_embedder.proj.weight"], P["x_embedder.proj.bias"], stride=p)   # [B, D, H/p, W/p]
    h = h.flatten(2).transpose(1, 2) + P["pos_embed"]
    te = linear(F.silu(linear(timestep_embedding(t), P, "t_embedder.mlp.0")), P, "t_embedder.mlp.2")
    c = te + P["y_embedder.embedding_table.weight"][y]
    record = []
    for i in range(cfg["depth"]):
        b = f"blocks.{i}."
        mod = linear(F.silu(c), P, b + "adaLN_modulation.1").chunk(6, dim=1)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod
        h = h + gate_msa.unsqueeze(1) * attention(modulate(layer_norm(h), shift_msa, scale_msa), P, b, cfg)
        m = modulate(layer_norm(h), shift_mlp, scale_mlp)
        if cfg["dense"]:
            m = linear(F.gelu(linear(m, P, b + "mlp.fc1"), approximate="tanh"), P, b + "mlp.fc2")
        else:
            m = moe(m, P, b, cfg, record)
        h = h + gate_mlp.unsqueeze(1) * m
    shift, scale = linear(F.silu(c), P, "final_layer.adaLN_modulation.1").chunk(2, dim=1)
    h = linear(modulate(layer_norm(h), shift, scale), P, "final_layer.linear")           # [B, T, p*p*Cout]
    Cout = h.shape[-1] // (p * p)
    g = int(round(math.sqrt(h.shape[1])))
    h = h.reshape(h.shape[0], g, g, p, p, Cout)
    out = torch.einsum("nhwpqc->nchpwq", h).reshape(h.shape[0], Cout, g * p, g * p)
    return out, record


# ----------------------------------------------------------------------------------------------------------------
# Loss

def approx_std_normal_cdf(x):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def decoder_nll(x0, mean, log_scale):
    """-log of the discretized Gaussian likelihood (nats, per element): bins of half-width 1/255; x0 < -0.999 uses
    the lower tail CDF(x+1/255), x0 > 0.999 the upper tail 1-CDF(x-1/255). Also returns the smallest clamped
    argument, to show that no clamp(min=1e-12) is active."""
    inv = torch.exp(-log_scale)
    cdf_plus = approx_std_normal_cdf(inv * (x0 - mean + 1.0 / 255.0))
    cdf_min = approx_std_normal_cdf(inv * (x0 - mean - 1.0 / 255.0))
    lo, hi = x0 < -0.999, x0 > 0.999
    mid = ~(lo | hi)
    arg = torch.where(lo, cdf_plus, torch.where(hi, 1.0 - cdf_min, cdf_plus - cdf_min))
    return -torch.log(arg.clamp(min=1e-12)), float(arg.detach().min())


def training_loss(P, cfg, S, x0, noise, t, y, frozen_eps=None):
    """frozen_eps replaces eps.detach() in the vb mean (finite differences hold it at the base point's value)."""
    C = cfg["in_channels"]
    ex = lambda a: torch.tensor(a, dtype=DT)[t].view(-1, 1, 1, 1)
    x_t = ex(S["sqrt_ab"]) * x0 + ex(S["sqrt_1m_ab"]) * noise
    out, record = dit_forward(P, cfg, x_t, t, y)
    eps, v = out[:, :C], out[:, C:]
    mse = ((noise - eps) ** 2).mean(dim=(1, 2, 3))
    eps_frozen = eps.detach() if frozen_eps is None else frozen_eps
    pred_x0 = ex(S["sqrt_recip_ab"]) * x_t - ex(S["sqrt_recipm1_ab"]) * eps_frozen
    model_mean = ex(S["coef1"]) * pred_x0 + ex(S["coef2"]) * x_t
    true_mean = ex(S["coef1"]) * x0 + ex(S["coef2"]) * x_t
    true_logvar = ex(S["post_logvar_clipped"])
    frac = (v + 1) / 2
    model_logvar = frac * ex(S["log_betas"]) + (1 - frac) * true_logvar
    kl = 0.5 * (-1.0 + model_logvar - true_logvar + torch.exp(true_logvar - model_logvar)
                + (true_mean - model_mean) ** 2 * torch.exp(-model_logvar))
    kl = kl.mean(dim=(1, 2, 3)) / math.log(2.0)
    nll, min_arg = decoder_nll(x0, model_mean, 0.5 * model_logvar)
    nll = nll.mean(dim=(1, 2, 3)) / math.log(2.0)
    vb = torch.where(t == 0, nll, kl)
    # only t == 0 samples use the likelihood; report their smallest clamped argument
    zero = (t == 0).nonzero().flatten().tolist()
    min_arg0 = min((decoder_nll(x0[i:i + 1], model_mean[i:i + 1], 0.5 * model_logvar[i:i + 1])[1] for i in zero),
                   default=1.0)
    balance = torch.stack([r["balance"] for r in record]) if record else torch.zeros(0, dtype=DT)
    total = (mse + vb).mean() + balance.sum()
    return dict(out=out, mse=mse, vb=vb, balance=balance, total=total, record=record, min_arg0=min_arg0)


# ----------------------------------------------------------------------------------------------------------------
# Case generation

def routing_margins(record, K):
    m_set, m_order = float("inf"), float("inf")
    for r in record:
        s = torch.sort(r["scores"], dim=-1, descending=True).values
        m_set = min(m_set, float((s[:, K - 1] - s[:, K]).min()))
        m_order = min(m_order, float((s[:, :K + 1][:, :-1] - s[:, :K + 1][:, 1:]).min()))
    return m_set, m_order


def make_inputs(cfg, rng):
    C, S = cfg["in_channels"], cfg["input_size"]
    x0 = rng.uniform(-1.0, 1.0, (B, C, S, S))
    # pixel extremes exercise the two tails of the decoder likelihood; keep others away from the +-0.999 thresholds
    x0 = np.where(np.abs(x0) > 0.99, np.sign(x0) * 0.98, x0)
    flat = x0.reshape(B, -1)
    for b in range(B):
        flat[b, rng.choice(flat.shape[1], 2, replace=False)] = [-1.0, 1.0]
    x0 = flat.reshape(x0.shape)
    noise = rng.standard_normal((B, C, S, S))
    y = rng.integers(0, cfg["num_classes"], B)
    y[2] = cfg["num_classes"]                               # the null (dropped) class
    f = lambda a: torch.tensor(np.asarray(a, dtype=np.float32), dtype=DT)
    return f(x0), f(noise), torch.tensor(T_VALUES, dtype=torch.int64), torch.tensor(y, dtype=torch.int64)


def build_case(name, spec, S):
    cfg = spec["cfg"]
    for attempt in range(200):
        rng = np.random.default_rng(spec["seed"] * 1000 + attempt)
        P = init_params(cfg, rng)
        x0, noise, t, y = make_inputs(cfg, rng)
        with torch.no_grad():
            r = training_loss(P, cfg, S, x0, noise, t, y)
        m_set, m_order = routing_margins(r["record"], cfg.get("num_experts_per_tok", 1))
        if (cfg["dense"] or min(m_set, m_order) >= MARGIN) and r["min_arg0"] >= MIN_BIN_PROB:
            break
    else:
        raise RuntimeError(f"{name}: no seed gave routing margins >= {MARGIN}")
    for k, v in P.items():
        v.requires_grad_(k != "pos_embed")
    r = training_loss(P, cfg, S, x0, noise, t, y)
    r["total"].backward()
    # Structural zeros: a bias on the keys adds the same q.b to every logit of a softmax row, so the gradients of the
    # flash layout's attn.k_norm.bias and of the key third of the timm layout's attn.qkv.bias are exactly 0; autograd
    # leaves roundoff there, which is replaced by 0.
    D = cfg["hidden_size"]
    for k, v in P.items():
        z = v.grad[D:2 * D] if k.endswith("attn.qkv.bias") else v.grad if k.endswith("attn.k_norm.bias") else None
        if z is not None:
            assert float(z.abs().max()) < 1e-12, (k, float(z.abs().max()))
            z.zero_()
    meta = dict(seed=spec["seed"] * 1000 + attempt, m_set=m_set, m_order=m_order, min_arg0=r["min_arg0"])
    return P, (x0, noise, t, y), r, meta


def fd_check(P, cfg, S, inputs, r, rng, n=12, h=1e-4):
    """Central differences of the total loss for n random parameter entries against autograd; the vb mean's eps
    stays at the base point's value, which is what its detach means."""
    eps0 = r["out"][:, :cfg["in_channels"]].detach()
    keys = [k for k in P if k != "pos_embed"]
    worst = 0.0
    for _ in range(n):
        k = keys[rng.integers(len(keys))]
        i = int(rng.integers(P[k].numel()))
        g = float(P[k].grad.reshape(-1)[i])
        vals = []
        for s in (h, -h):
            with torch.no_grad():
                P[k].view(-1)[i] += s
                vals.append(float(training_loss(P, cfg, S, *inputs, frozen_eps=eps0)["total"]))
                P[k].view(-1)[i] -= s
        fd = (vals[0] - vals[1]) / (2 * h)
        worst = max(worst, abs(fd - g) / max(abs(g), 1e-3))
    return worst


def save_safetensors(path, tensors, metadata):
    """Byte-reproducible safetensors: `__metadata__` first with sorted keys, then tensors in name order, header padded
    with spaces to a multiple of 8 (the safetensors library orders metadata differently from run to run)."""
    import struct
    dtypes = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}
    header, blobs, offset = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k])
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[k] = {"dtype": dtypes[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw); offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text))); f.write(text)
        for raw in blobs:
            f.write(raw)


def write_case(name, cfg, P, inputs, r, meta):
    x0, noise, t, y = inputs
    f32 = lambda a: np.ascontiguousarray(a.detach().numpy().astype(np.float32))
    T = {}
    for k, v in P.items():
        T["param." + k] = f32(v)
        if k != "pos_embed":
            T["grad." + k] = f32(v.grad)
    T.update({"x0": f32(x0), "noise": f32(noise), "t": t.numpy().astype(np.int64), "y": y.numpy().astype(np.int64),
              "out": f32(r["out"]), "loss.mse": f32(r["mse"]), "loss.vb": f32(r["vb"]),
              "loss.total": f32(r["total"].reshape(1))})
    if not cfg["dense"]:
        T["loss.balance"] = f32(r["balance"])
        for i, rec in enumerate(r["record"]):
            T[f"routing.{i}.experts"] = rec["experts"].numpy().astype(np.int64)
            T[f"routing.{i}.weights"] = f32(rec["weights"])
    metadata = {"config": json.dumps(cfg), "alpha": repr(ALPHA), "seed": str(meta["seed"])}
    if not cfg["dense"]:
        metadata.update(min_topk_margin=repr(meta["m_set"]), min_slot_order_margin=repr(meta["m_order"]))
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, name + ".safetensors")
    save_safetensors(path, T, metadata)
    return path


# ----------------------------------------------------------------------------------------------------------------
# Upstream check (imports upstream code; only with --check-upstream)

PATCHES_MODELS = [
    # fp32 on CPU: flash layout's q/k are cast to half for the CUDA kernel
    ("q = self.q_norm(q).half()", "q = self.q_norm(q)"),
    ("k = self.k_norm(k).half()", "k = self.k_norm(k)"),
    # the next three are identities under the default float32 dtype and keep float64 runs in float64
    ("-math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32) / half",
     "-math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.get_default_dtype()) / half"),
    ("args = t[:, None].float() * freqs[None]", "args = t[:, None].to(torch.get_default_dtype()) * freqs[None]"),
    ("y[flat_topk_idx == i] = expert(hidden_states[flat_topk_idx == i]).float()",
     "y[flat_topk_idx == i] = expert(hidden_states[flat_topk_idx == i]).to(torch.get_default_dtype())"),
]
PATCHES_DIFFUSION = [
    ("res = th.from_numpy(arr).to(device=timesteps.device)[timesteps].float()",
     "res = th.from_numpy(arr).to(device=timesteps.device)[timesteps].to(th.get_default_dtype())"),
]


def export_upstream(git_dir, dest, dense):
    os.makedirs(dest, exist_ok=True)
    tar = subprocess.run(["git", "-C", git_dir, "archive", "HEAD", "models.py", "diffusion"], check=True,
                         capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=tar, check=True)
    for rel, patches in (("models.py", [] if dense else PATCHES_MODELS),
                         ("diffusion/gaussian_diffusion.py", PATCHES_DIFFUSION)):
        path = os.path.join(dest, rel)
        text = open(path).read()
        for old, new in patches:
            assert text.count(old) == 1, f"{rel}: patch target not found once: {old!r}"
            text = text.replace(old, new)
        if dense and rel == "models.py":   # facebookresearch/DiT: float32 timestep embedding as well
            for old, new in PATCHES_MODELS[2:4]:
                assert text.count(old) == 1, old
                text = text.replace(old, new)
        open(path, "w").write(text)
    return dest


def install_shims():
    """timm's package __init__ imports torchvision; load only timm.layers. flash_attn is replaced by an exact
    attention (softmax(q k^T / sqrt(hd)) v) over a packed [b, s, 3, h, d] qkv."""
    import importlib.util
    if "timm.models.vision_transformer" not in sys.modules:
        spec = importlib.util.find_spec("timm")
        pkg = types.ModuleType("timm"); pkg.__path__ = [os.path.dirname(spec.origin)]; sys.modules["timm"] = pkg
        if "torchvision" not in sys.modules:
            tv = types.ModuleType("torchvision"); ops = types.ModuleType("torchvision.ops")
            misc = types.ModuleType("torchvision.ops.misc"); misc.FrozenBatchNorm2d = object
            tv.ops = ops; ops.misc = misc
            sys.modules.update({"torchvision": tv, "torchvision.ops": ops, "torchvision.ops.misc": misc})
        import timm.layers as L
        vt = types.ModuleType("timm.models.vision_transformer")
        vt.PatchEmbed, vt.Mlp, vt.Attention = L.PatchEmbed, L.Mlp, L.Attention
        models = types.ModuleType("timm.models"); models.__path__ = []
        sys.modules["timm.models"] = models; sys.modules["timm.models.vision_transformer"] = vt

    class FlashSelfAttention(torch.nn.Module):
        def __init__(self, attention_dropout=0.0, softmax_scale=None, causal=False):
            super().__init__()
            self.softmax_scale = softmax_scale

        def forward(self, qkv):
            q, k, v = qkv.unbind(2)                                       # [b, s, h, d]
            q, k, v = (z.transpose(1, 2) for z in (q, k, v))
            scale = self.softmax_scale or 1.0 / math.sqrt(q.shape[-1])
            a = torch.softmax((q @ k.transpose(-2, -1)) * scale, dim=-1)
            return (a @ v).transpose(1, 2).contiguous()                   # [b, s, h, d]

    fa = types.ModuleType("flash_attn"); fa.__version__ = "2.0.0"
    fai = types.ModuleType("flash_attn.flash_attn_interface")
    fai.flash_attn_kvpacked_func = fai.flash_attn_unpadded_kvpacked_func = None
    fam = types.ModuleType("flash_attn.modules"); famha = types.ModuleType("flash_attn.modules.mha")
    famha.FlashSelfAttention = FlashSelfAttention
    fa.flash_attn_interface, fa.modules, fam.mha = fai, fam, famha
    sys.modules.update({"flash_attn": fa, "flash_attn.flash_attn_interface": fai, "flash_attn.modules": fam,
                        "flash_attn.modules.mha": famha})


def import_upstream(root, tag):
    """Imports root/models.py and root/diffusion as fresh modules."""
    import importlib
    install_shims()
    for k in [k for k in sys.modules if k == "diffusion" or k.startswith("diffusion.")]:
        del sys.modules[k]
    sys.path.insert(0, root)
    try:
        diffusion = importlib.import_module("diffusion")
        spec = importlib.util.spec_from_file_location(f"upstream_models_{tag}", os.path.join(root, "models.py"))
        models = importlib.util.module_from_spec(spec); spec.loader.exec_module(models)
    finally:
        sys.path.remove(root)
    return models, diffusion


def rel_err(a, b, floor=1e-30):
    """max |a - b| / max |b|; the denominator is at least floor."""
    a = a.detach().to(DT); b = b.detach().to(DT)
    return float((a - b).abs().max() / b.abs().max().clamp(min=floor))


def check_upstream(name, cfg, P, inputs, r, modules, dtype):
    models, diffusion = modules
    torch.set_default_dtype(dtype)
    try:
        kw = dict(input_size=cfg["input_size"], patch_size=cfg["patch_size"], in_channels=cfg["in_channels"],
                  hidden_size=cfg["hidden_size"], depth=cfg["depth"], num_heads=cfg["num_heads"],
                  mlp_ratio=cfg["mlp_ratio"], num_classes=cfg["num_classes"], learn_sigma=cfg["learn_sigma"],
                  class_dropout_prob=0.1)
        if not cfg["dense"]:
            kw.update(num_experts=cfg["num_experts"], num_experts_per_tok=cfg["num_experts_per_tok"],
                      use_flash_attn=cfg["use_flash_attn"])
        model = models.DiT(**kw)
        model.load_state_dict({k: v.detach().to(dtype) for k, v in P.items()}, strict=True)
        model.y_embedder.dropout_prob = 0.0          # labels arrive already dropped (null class = num_classes)
        x0, noise, t, y = (z.to(dtype) if z.is_floating_point() else z for z in inputs)
        S = schedule()
        ex = lambda a: torch.tensor(a, dtype=dtype)[t].view(-1, 1, 1, 1)
        x_t = ex(S["sqrt_ab"]) * x0 + ex(S["sqrt_1m_ab"]) * noise
        errs = {}
        model.eval()
        with torch.no_grad():
            errs["out(eval)"] = rel_err(model(x_t, t, y), r["out"])
        model.train()
        captured, aux, routes = {}, [], []
        model.register_forward_hook(lambda m, i, o: captured.__setitem__("out", o.detach()))
        if not cfg["dense"]:
            for blk in model.blocks:
                # a forward hook that returns something replaces the module's output: return None
                blk.moe.gate.register_forward_hook(lambda m, i, o: (aux.append(o[2]), routes.append(o[:2]), None)[2])
        diff = diffusion.create_diffusion("")
        terms = diff.training_losses(model, x0, t, dict(y=y), noise=noise)
        loss = terms["loss"].mean()
        loss.backward()
        errs["out(train)"] = rel_err(captured["out"], r["out"])
        errs["loss.mse"] = rel_err(terms["mse"], r["mse"])
        errs["loss.vb"] = rel_err(terms["vb"], r["vb"])
        total = loss + (sum(aux) if aux else 0.0)
        errs["loss.total"] = rel_err(total.reshape(1), r["total"].reshape(1))
        if aux:
            errs["loss.balance"] = rel_err(torch.stack([a.reshape(()) for a in aux]), r["balance"])
            same = True
            for (idx, w), rec in zip(routes, r["record"]):
                order = torch.argsort(w, dim=-1, descending=True)
                same &= bool((torch.gather(idx, 1, order) == rec["experts"]).all())
                errs.setdefault("routing.weights", 0.0)
                errs["routing.weights"] = max(errs["routing.weights"],
                                              rel_err(torch.gather(w, 1, order), rec["weights"]))
            errs["routing_identical"] = same
        grads = dict(model.named_parameters())
        worst, worst_key = 0.0, None
        for k, v in P.items():
            if k == "pos_embed":
                assert grads[k].grad is None
                continue
            if k.endswith("attn.k_norm.bias"):      # exactly 0 in the fixture; upstream holds roundoff
                errs["k_norm.bias max|grad|"] = max(errs.get("k_norm.bias max|grad|", 0.0),
                                                    float(grads[k].grad.abs().max()))
                continue
            e = rel_err(grads[k].grad, v.grad, floor=1e-12)
            if e > worst:
                worst, worst_key = e, k
        errs["grad(worst)"] = worst
        errs["grad(worst key)"] = worst_key
        return errs
    finally:
        torch.set_default_dtype(torch.float32)


# ----------------------------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check-upstream", action="store_true",
                    help="compare with upstream models.py + diffusion (float64 with dtype-only patches: asserted "
                         "within 1e-5; float32 as upstream runs: reported)")
    ap.add_argument("--upstream-git", default=UPSTREAM_MOE_GIT, help="feizc/DiT-MoE git dir")
    ap.add_argument("--upstream-dense-git", default=UPSTREAM_DENSE_GIT, help="facebookresearch/DiT git dir (dense)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    a = ap.parse_args()
    torch.set_num_threads(2)
    S = schedule()
    upstream = {}
    if a.check_upstream:
        tmp = tempfile.mkdtemp(prefix="ditmoe-upstream-")
        upstream["moe"] = import_upstream(export_upstream(a.upstream_git, os.path.join(tmp, "moe"), False), "moe")
        if os.path.isdir(a.upstream_dense_git):
            upstream["dense"] = import_upstream(
                export_upstream(a.upstream_dense_git, os.path.join(tmp, "dense"), True), "dense")
    failed = False
    for name in a.cases:
        spec = CASES[name]
        cfg = spec["cfg"]
        P, inputs, r, meta = build_case(name, spec, S)
        missing = [k for k, v in P.items() if k != "pos_embed" and not k.endswith("attn.k_norm.bias")
                   and float(v.grad.abs().max()) < 1e-8]
        assert not missing, f"{name}: zero gradients for {missing}"
        fd = fd_check(P, cfg, S, inputs, r, np.random.default_rng(7))
        assert fd < 1e-5, f"{name}: finite differences disagree with autograd ({fd:.2e})"
        print(f"{name}: total {float(r['total'].detach()):.6f}  mse {float(r['mse'].detach().mean()):.4f}  vb {float(r['vb'].detach().mean()):.4f}  "
              f"balance {[round(float(b), 6) for b in r['balance'].detach()]}  seed {meta['seed']}  "
              f"margins {meta['m_set']:.2e}/{meta['m_order']:.2e}  t0 min arg {meta['min_arg0']:.2e}  "
              f"fd-vs-autograd {fd:.1e}")
        if not a.no_write:
            path = write_case(name, cfg, P, inputs, r, meta)
            print(f"  wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")
        if a.check_upstream:
            kind = "dense" if cfg["dense"] else "moe"
            if kind not in upstream or (kind == "moe" and cfg["n_shared_experts"] != 2):
                print("  upstream: skipped (upstream hard-codes n_shared_experts = 2)" if kind == "moe"
                      else "  upstream: skipped (no facebookresearch/DiT checkout)")
                continue
            for dtype in (torch.float64, torch.float32):
                errs = check_upstream(name, cfg, P, inputs, r, upstream[kind], dtype)
                print(f"  upstream {kind} {str(dtype)[6:]}: " + ", ".join(
                    f"{k} {v:.2e}" if isinstance(v, float) else f"{k} {v}" for k, v in errs.items()))
                if dtype == torch.float64:
                    bad = [k for k, v in errs.items() if isinstance(v, float) and v > 1e-5]
                    if bad or errs.get("routing_identical") is False:
                        print(f"  FAIL: {bad}")
                        failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
