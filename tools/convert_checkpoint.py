#!/usr/bin/env python3
"""Convert an upstream DiT-MoE / DiT PyTorch checkpoint (.pt) into a safetensors file moebench can load.

    python3 tools/convert_checkpoint.py dit_moe_s_8E2A.pt dit_moe_s_8E2A.safetensors
    python3 tools/convert_checkpoint.py dit_moe_xl_8E2A.pt xl.safetensors --dtype bf16

Accepted layouts (what upstream download.find_model reads and train.py / DeepSpeed write): a raw state dict, or a
dict wrapping one under "ema", "model", "module" or "state_dict" (checked in that order, so a train.py checkpoint
{"model", "ema", "opt", "args"} yields the EMA weights; use --wrapper to pick another). "module." prefixes
(DataParallel / DeepSpeed) are stripped.
Tensor dtypes are preserved unless --dtype is given. Needs PyTorch at run time (CPU build is enough):
    pip install "torch==2.13.0+cpu"
"""

import argparse
import collections
import sys

WRAPPERS = ("ema", "model", "module", "state_dict")
DTYPE_NAMES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}


def import_torch():
    try:
        import torch
    except ImportError:
        sys.exit("convert_checkpoint.py needs PyTorch to read .pt files. Install the CPU build with\n"
                 '    pip install "torch==2.13.0+cpu"\n'
                 "(a plain `pip install torch` pulls several GB of CUDA packages).")
    return torch


def unwrap(obj, wrapper, torch):
    """Return (state_dict, description of where it was found)."""
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint top level is a {type(obj).__name__}, expected a dict (state dict or wrapper)")
    if wrapper is not None:
        if wrapper not in obj:
            raise ValueError(f"--wrapper {wrapper!r} not in checkpoint; top-level keys: {sorted(obj)[:20]}")
        return obj[wrapper], f"wrapper '{wrapper}'"
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, "raw state dict"
    for key in WRAPPERS:
        if key in obj and isinstance(obj[key], dict):
            return obj[key], f"wrapper '{key}' (top-level keys: {', '.join(sorted(map(str, obj)))})"
    return obj, "raw state dict"


def clean(state_dict, torch):
    """Strip 'module.' prefixes, make tensors contiguous, reject anything that is not a tensor."""
    out = collections.OrderedDict()
    bad = []
    for key, value in state_dict.items():
        name = str(key)
        while name.startswith("module."):
            name = name[len("module."):]
        if not isinstance(value, torch.Tensor):
            bad.append(f"{key!r}: {type(value).__name__}")
            continue
        if name in out:
            raise ValueError(f"key {name!r} appears twice after stripping 'module.' prefixes")
        out[name] = value.detach().cpu().contiguous()
    if bad:
        listing = "\n  ".join(bad[:20])
        more = f"\n  … and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise ValueError(f"{len(bad)} entries are not tensors (wrong wrapper? try --wrapper):\n  {listing}{more}")
    if not out:
        raise ValueError("no tensors found in the checkpoint")
    return out


def load_pt(path, torch):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as safe_error:  # e.g. a train.py checkpoint whose "args" is an argparse.Namespace
        print(f"note: weights_only load failed ({type(safe_error).__name__}); retrying with weights_only=False. "
              "Only do this for checkpoints you trust.", file=sys.stderr)
        return torch.load(path, map_location="cpu", weights_only=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="upstream checkpoint (.pt / .pth), read on CPU, or a .safetensors file to recast")
    parser.add_argument("output", help="safetensors file to write")
    parser.add_argument("--dtype", choices=sorted(DTYPE_NAMES), help="cast floating tensors (default: keep)")
    parser.add_argument("--wrapper", choices=WRAPPERS, help="take the state dict from this top-level key")
    args = parser.parse_args()

    torch = import_torch()
    from safetensors.torch import save_file

    metadata = None
    try:
        if args.input.endswith(".safetensors"):
            from safetensors import safe_open
            with safe_open(args.input, "pt") as f:
                obj = collections.OrderedDict((k, f.get_tensor(k)) for k in f.keys())
                metadata = f.metadata()
            if metadata and args.dtype:
                metadata = dict(metadata, stored_dtype=args.dtype)
        else:
            obj = load_pt(args.input, torch)
        state_dict, where = unwrap(obj, args.wrapper, torch)
        tensors = clean(state_dict, torch)
    except (ValueError, OSError, RuntimeError) as error:
        sys.exit(f"{args.input}: {error}")

    if args.dtype:
        target = getattr(torch, DTYPE_NAMES[args.dtype])
        tensors = collections.OrderedDict(
            (k, v.to(target) if v.is_floating_point() else v) for k, v in tensors.items())

    save_file(tensors, args.output, metadata=metadata)

    dtypes = collections.Counter(str(v.dtype).replace("torch.", "") for v in tensors.values())
    params = sum(v.numel() for v in tensors.values())
    size = sum(v.numel() * v.element_size() for v in tensors.values())
    blocks = {k.split(".")[1] for k in tensors if k.startswith("blocks.")}
    experts = {k.split(".")[4] for k in tensors if k.startswith("blocks.0.moe.experts.")}
    layout = ("flash (Wqkv/out_proj)" if any(".attn.Wqkv." in k for k in tensors)
              else "timm (qkv/proj)" if any(".attn.qkv." in k for k in tensors) else "unknown")
    print(f"{args.input}: {where}")
    print(f"wrote {args.output}: {len(tensors)} tensors, {params:,} parameters, {size / 2**20:.1f} MiB")
    print(f"  dtypes: {', '.join(f'{n} × {d}' for d, n in dtypes.most_common())}")
    print(f"  depth {len(blocks)}, attention {layout}, "
          + (f"{len(experts)} routed experts" if experts else "dense MLP" if any(".mlp.fc1." in k for k in tensors)
             else "no MoE/MLP keys found"))
    if "pos_embed" in tensors:
        print(f"  pos_embed {list(tensors['pos_embed'].shape)} (tokens T = {tensors['pos_embed'].shape[1]})")


if __name__ == "__main__":
    main()
