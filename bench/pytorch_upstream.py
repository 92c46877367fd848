#!/usr/bin/env python3
"""Times the upstream PyTorch DiT-MoE / DiT forward on this CPU, for a side-by-side with `moebench-bench engine`.

Nothing of upstream is shipped here: pass the path of a checkout's `models.py` (feizc/DiT-MoE for MoE models,
facebookresearch/DiT for dense ones). Needs torch (CPU wheel) and timm; timm's package __init__ pulls torchvision,
so only the three layers upstream imports (PatchEmbed, Attention, Mlp) are loaded from timm.layers.

    python3 bench/pytorch_upstream.py --models-py ../DiT-MoE/models.py --model DiT-MoE-S/2-8E2A --threads 2
    python3 bench/pytorch_upstream.py --models-py ../DiT/models.py --model DiT-S/2 --threads 2
    python3 bench/pytorch_upstream.py --models-py ../DiT-MoE/models.py --model DiT-MoE-S/2-8E2A --threads 2 --bf16

Prints the median ms per forward over --iterations (after one warm-up) at each batch size, random weights, fp32
(or, with --bf16, under torch.autocast("cpu", dtype=torch.bfloat16): matmuls in bf16, the ops autocast keeps in
fp32 in fp32), torch.set_num_threads(--threads), and the true GFLOP/s, true FLOPs = 2 × (linear MACs +
attention-score matmuls) as Metrics `ModelCost` counts them (given with --gflop, per image).
"""
import contextlib
import argparse, importlib.util, os, statistics, sys, time, types


def load_upstream(path):
    spec = importlib.util.find_spec("timm")
    if spec is None:
        sys.exit("timm is not installed: pip install --no-deps timm")
    pkg = types.ModuleType("timm"); pkg.__path__ = [os.path.dirname(spec.origin)]; sys.modules["timm"] = pkg
    if "torchvision" not in sys.modules:  # timm.layers.create_norm imports one class from torchvision.ops.misc
        tv = types.ModuleType("torchvision"); ops = types.ModuleType("torchvision.ops"); misc = types.ModuleType("torchvision.ops.misc")
        misc.FrozenBatchNorm2d = object; tv.ops = ops; ops.misc = misc
        sys.modules.update({"torchvision": tv, "torchvision.ops": ops, "torchvision.ops.misc": misc})
    import timm.layers as L
    vt = types.ModuleType("timm.models.vision_transformer")
    vt.PatchEmbed, vt.Mlp, vt.Attention = L.PatchEmbed, L.Mlp, getattr(L, "Attention", None)
    models = types.ModuleType("timm.models"); models.__path__ = []
    sys.modules["timm.models"] = models; sys.modules["timm.models.vision_transformer"] = vt
    spec = importlib.util.spec_from_file_location("upstream_models", path)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-py", required=True)
    ap.add_argument("--model", default="DiT-MoE-S/2-8E2A", help="DiT-MoE-S/2-8E2A, DiT-MoE-B/2-8E2A, DiT-S/2 or DiT-B/2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 8])
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--gflop", type=float, default=None, help="true GFLOP per image; default from a table")
    ap.add_argument("--bf16", action="store_true", help="run under torch.autocast on CPU with bfloat16")
    a = ap.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    torch.set_grad_enabled(False)
    m = load_upstream(a.models_py)
    size = a.model.split("/")[0].split("-")[-1]
    dims = {"S": (12, 384, 6), "B": (12, 768, 12)}[size]
    gflop = a.gflop or {"DiT-MoE-S/2-8E2A": 32.06, "DiT-MoE-B/2-8E2A": 125.77, "DiT-S/2": 12.11, "DiT-B/2": 46.01}[a.model]
    kwargs = dict(depth=dims[0], hidden_size=dims[1], num_heads=dims[2], patch_size=2, input_size=32)
    if "MoE" in a.model:
        kwargs.update(num_experts=8, num_experts_per_tok=2, pretraining_tp=2, use_flash_attn=False)
    model = m.DiT(**kwargs).eval()
    # upstream zero-initialises adaLN and the final layer: give every parameter non-zero values, as moebench does
    for p in model.parameters():
        torch.nn.init.uniform_(p, -0.05, 0.05)
    precision = "bf16 autocast" if a.bf16 else "fp32"
    print(f"torch {torch.__version__}, {a.threads} thread(s), {a.model}, {precision}")

    def ctx():
        return torch.autocast("cpu", dtype=torch.bfloat16) if a.bf16 else contextlib.nullcontext()
    print("batch   ms/forward   GFLOP/s")
    for b in a.batches:
        x = torch.randn(b, 4, 32, 32); t = torch.full((b,), 500.0); y = torch.arange(b) % 1000
        with ctx():
            model(x, t, y)
            times = []
            for _ in range(a.iterations):
                s = time.perf_counter(); model(x, t, y); times.append(time.perf_counter() - s)
        med = statistics.median(times)
        print(f"{b:5d}   {med * 1000:10.1f}   {gflop * b / med:7.1f}")


if __name__ == "__main__":
    main()
