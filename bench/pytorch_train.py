#!/usr/bin/env python3
"""Times upstream PyTorch DiT-MoE training steps on this CPU, for a side-by-side with moebench's trainer.

    python3 bench/pytorch_train.py --models-py ../DiT-MoE/models.py --config digits-moe --threads 2 --batch 128

Nothing of upstream is shipped here: pass the path of a feizc/DiT-MoE checkout's `models.py`; the `diffusion`
package next to it provides the loss. Needs torch (CPU wheel) and timm (only timm.layers is loaded).

One step, as upstream train.py does it without the VAE: x0 ~ N(0, 1) [B, C, H, W], t uniform in 0..999,
y uniform over the classes, the model in train mode (upstream's LabelEmbedder drops 10% of labels to the null
class), loss = create_diffusion("").training_losses(model, x0, t, {"y": y})["loss"].mean(), loss.backward(),
AdamW(lr 1e-4, weight decay 0).step(). The expert balance losses are part of the objective through upstream's
AddAuxiliaryLoss, which feeds them gradient 1 in backward; their values are not in `loss` and are only reported.
The timed span is zero_grad + forward + loss + backward + optimizer step; drawing the batch is outside it.

Configs:
    digits-moe        input 8, patch 2, C 1, D 128, depth 4, heads 4, E 8, top-2, 10 classes
    digits-dense      the same with a dense tanh-GELU MLP (4D) per block and D = --dense-hidden (default 192, moebench's digits-dense)
    DiT-MoE-S/2-8E2A  input 32, patch 2, C 4, D 384, depth 12, heads 6, E 8, top-2, 1000 classes (batch default 8)
    FILE.json         upstream DiT argument names, plus "dense": true for the dense variant
feizc/DiT-MoE's models.py has no dense option. The dense variant here is that DiT with each block's SparseMoeBlock
replaced by timm's Mlp(D, 4D, tanh-GELU) (facebookresearch/DiT's block); parameter names differ, the math does not.
All models keep upstream's init (adaLN and final layer zero), pretraining_tp 2, timm attention and learn_sigma.

True FLOPs (forward, per image; multiply-adds count 2; T = (input/patch)^2 tokens, D hidden, L depth, E experts,
K top-k, S = shared-expert width / D = 2, Cout = 2C, p patch; elementwise ops, norms and softmax are not counted):
    patch embed      2*T*D*C*p^2
    t embedder       2*(256*D + D*D)
    per block        adaLN 2*D*6D + qkv 2*T*D*3D + proj 2*T*D*D + QK^T 2*T*T*D + AV 2*T*T*D
                     MoE:   gate 2*T*D*E + K routed SwiGLU experts K*3*2*T*D*4D + shared SwiGLU 3*2*T*D*(S*D)
                     dense: 2*2*T*D*4D
    final layer      adaLN 2*D*2D + linear 2*T*D*p^2*Cout
A training step counts 3x the forward FLOPs (forward + backward w.r.t. activations and weights). DiT-MoE-S/2-8E2A
comes to 32.06 GFLOP per image forward, the figure bench/pytorch_upstream.py uses.
"""
import argparse
import importlib
import importlib.util
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

CONFIGS = {
    "digits-moe": dict(input_size=8, patch_size=2, in_channels=1, hidden_size=128, depth=4, num_heads=4,
                       num_experts=8, num_experts_per_tok=2, num_classes=10, learn_sigma=True),
    "digits-dense": dict(input_size=8, patch_size=2, in_channels=1, hidden_size=192, depth=4, num_heads=4,
                         num_classes=10, learn_sigma=True, dense=True),
    "DiT-MoE-S/2-8E2A": dict(input_size=32, patch_size=2, in_channels=4, hidden_size=384, depth=12, num_heads=6,
                             num_experts=8, num_experts_per_tok=2, num_classes=1000, learn_sigma=True),
}


def forward_flops(cfg):
    """True forward FLOPs per image (see the module docstring)."""
    D, L, p, C = cfg["hidden_size"], cfg["depth"], cfg["patch_size"], cfg["in_channels"]
    T = (cfg["input_size"] // p) ** 2
    cout = 2 * C if cfg.get("learn_sigma", True) else C
    hid = int(cfg.get("mlp_ratio", 4) * D)
    f = 2 * T * D * C * p * p + 2 * (256 * D + D * D)
    block = 2 * D * 6 * D + 2 * T * D * 3 * D + 2 * T * D * D + 2 * 2 * T * T * D
    if cfg.get("dense"):
        block += 2 * 2 * T * D * hid
    else:
        E, K, S = cfg["num_experts"], cfg["num_experts_per_tok"], 2
        block += 2 * T * D * E + K * 3 * 2 * T * D * hid + 3 * 2 * T * D * (S * D)
    f += L * block + 2 * D * 2 * D + 2 * T * D * p * p * cout
    return f


def build(models, cfg):
    import torch.nn as nn
    from timm.models.vision_transformer import Mlp
    kw = {k: v for k, v in cfg.items() if k not in ("dense", "name")}
    if not cfg.get("dense"):
        return models.DiT(**kw)
    kw.update(num_experts=1, num_experts_per_tok=1)
    model = models.DiT(**kw)
    D = cfg["hidden_size"]
    for blk in model.blocks:
        # DiTBlock.forward calls self.moe(h): a timm Mlp in its place is facebookresearch/DiT's dense block
        blk.moe = Mlp(in_features=D, hidden_features=int(cfg.get("mlp_ratio", 4) * D),
                      act_layer=lambda: nn.GELU(approximate="tanh"), drop=0)
        nn.init.xavier_uniform_(blk.moe.fc1.weight); nn.init.zeros_(blk.moe.fc1.bias)
        nn.init.xavier_uniform_(blk.moe.fc2.weight); nn.init.zeros_(blk.moe.fc2.bias)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-py", required=True, help="feizc/DiT-MoE models.py (its diffusion/ is used too)")
    ap.add_argument("--config", default="digits-moe", help="digits-moe, digits-dense, DiT-MoE-S/2-8E2A or FILE.json")
    ap.add_argument("--dense-hidden", type=int, default=192, help="hidden size of digits-dense")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=None, help="default 128, 8 for DiT-MoE-S/2-8E2A")
    ap.add_argument("--steps", type=int, default=30, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    ap.add_argument("--step-times", action="store_true", help="include every timed step's ms in the JSON")
    a = ap.parse_args()

    import torch
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    from make_train_fixtures import install_shims
    install_shims()
    up = os.path.dirname(os.path.abspath(a.models_py))
    sys.path.insert(0, up)
    diffusion = importlib.import_module("diffusion")
    spec = importlib.util.spec_from_file_location("upstream_models", a.models_py)
    models = importlib.util.module_from_spec(spec); spec.loader.exec_module(models)

    if a.config.endswith(".json"):
        cfg = json.load(open(a.config))
        cfg.pop("name", None)
        for k in ("n_shared_experts", "use_flash_attn"):
            if k == "n_shared_experts" and cfg.get(k, 2) != 2:
                sys.exit("upstream DiT-MoE hard-codes n_shared_experts = 2")
            if k == "use_flash_attn" and cfg.get(k):
                sys.exit("use_flash_attn needs CUDA flash_attn; this is a CPU benchmark")
            cfg.pop(k, None)
        if isinstance(cfg.get("mlp_ratio"), float) and cfg["mlp_ratio"] == int(cfg["mlp_ratio"]):
            cfg["mlp_ratio"] = int(cfg["mlp_ratio"])   # upstream sizes experts with mlp_ratio * D
    else:
        cfg = dict(CONFIGS[a.config])
        if a.config == "digits-dense":
            cfg["hidden_size"] = a.dense_hidden
    batch = a.batch or (8 if a.config == "DiT-MoE-S/2-8E2A" else 128)

    model = build(models, cfg).train()
    diff = diffusion.create_diffusion("")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0)
    aux = []
    for blk in model.blocks:
        if hasattr(blk.moe, "gate"):
            blk.moe.gate.register_forward_hook(lambda m, i, o: aux.append(float(o[2].detach())) if o[2] is not None else None)
    C, S, ncls = cfg["in_channels"], cfg["input_size"], cfg["num_classes"]
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)

    times, losses, auxes = [], [], []
    for step in range(a.warmup + a.steps):
        x0 = torch.randn(batch, C, S, S)
        t = torch.randint(0, diff.num_timesteps, (batch,))
        y = torch.randint(0, ncls, (batch,))
        aux.clear()
        s = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = diff.training_losses(model, x0, t, dict(y=y))["loss"].mean()
        loss.backward()
        opt.step()
        e = time.perf_counter() - s
        if step >= a.warmup:
            times.append(e); losses.append(float(loss.detach())); auxes.append(sum(aux))
    med = statistics.median(times)
    fwd = forward_flops(cfg)
    res = dict(config=a.config, model=cfg, threads=a.threads, batch=batch, steps=a.steps, warmup=a.warmup,
               torch=torch.__version__, trainable_params=n_params, median_ms=med * 1e3,
               mean_ms=statistics.mean(times) * 1e3, min_ms=min(times) * 1e3, samples_per_s=batch / med,
               forward_gflop_per_image=fwd / 1e9, train_gflop_per_step=3 * fwd * batch / 1e9,
               gflop_per_s=3 * fwd * batch / med / 1e9, first_loss=losses[0], last_loss=losses[-1],
               last_balance_loss=auxes[-1], loadavg_1min_after=os.getloadavg()[0])
    if a.step_times:
        res["step_times_ms"] = [x * 1e3 for x in times]
    if a.json:
        print(json.dumps(res))
        return
    print(f"torch {torch.__version__}, {a.threads} thread(s), {a.config}, batch {batch}, {n_params:,} trainable "
          f"parameters, {a.warmup} warm-up + {a.steps} timed steps")
    print(f"median {res['median_ms']:.1f} ms/step (mean {res['mean_ms']:.1f}, min {res['min_ms']:.1f}), "
          f"{res['samples_per_s']:.1f} samples/s, {res['gflop_per_s']:.1f} GFLOP/s "
          f"({res['forward_gflop_per_image']:.4f} GFLOP/image forward, x3 per training step)")
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}, balance loss (sum over layers) {auxes[-1]:.5f}; "
          f"1-min load average after the run {res['loadavg_1min_after']:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
