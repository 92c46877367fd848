#!/usr/bin/env python3
"""Extract the decoder of a released diffusers AutoencoderKL (sd-vae-ft-mse / sd-vae-ft-ema) for moebench.

    python3 tools/convert_vae.py sd-vae-ft-mse/ vae-decoder/            # a downloaded HF snapshot directory
    python3 tools/convert_vae.py diffusion_pytorch_model.bin vae-decoder/ --config config.json
    python3 tools/convert_vae.py sd-vae-ft-ema/ vae-decoder/ --dtype f16

Input: a directory with `config.json` and `diffusion_pytorch_model.safetensors` (or `.bin`), or one weights file
plus `--config`. Output directory: `config.json` (copied) and `decoder.safetensors` holding only `decoder.*` and
`post_quant_conv.*` (about 198 MB in F32 for sd-vae, 99 MB in F16) with diffusers' key names unchanged; the old
attention names of the released files (`query`, `key`, `value`, `proj_attn`) are kept, moebench reads both.
moebench's loader (Vision.VAEDecoderWeights) reads the full file as well; this script only makes it smaller and
converts `.bin` (a pickle, which moebench does not read) to safetensors.

Not handled: CompVis/ldm-format checkpoints (`vae-ft-mse-840000-ema-pruned.ckpt`, keys `decoder.mid.attn_1.q`,
`decoder.up.N.block.M`): load them with diffusers' `AutoencoderKL.from_single_file` and `save_pretrained` first.
Needs numpy and safetensors; `.bin` input also needs torch.
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

DTYPES = {"f32": np.float32, "f16": np.float16}


def load_state(path):
    if path.endswith(".safetensors"):
        return load_file(path)
    import torch  # .bin / .pt: a torch pickle
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("source", help="HF snapshot directory, or a .safetensors / .bin weights file")
    ap.add_argument("out_dir")
    ap.add_argument("--config", help="config.json when SOURCE is a file")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    a = ap.parse_args()

    if os.path.isdir(a.source):
        config = a.config or os.path.join(a.source, "config.json")
        for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"):
            weights = os.path.join(a.source, name)
            if os.path.exists(weights):
                break
        else:
            sys.exit(f"{a.source}: no diffusion_pytorch_model.safetensors or .bin inside")
    else:
        weights, config = a.source, a.config
        if not config:
            sys.exit("--config config.json is needed when SOURCE is a single weights file")
    with open(config) as f:
        cfg = json.load(f)
    if cfg.get("_class_name", "AutoencoderKL") != "AutoencoderKL":
        sys.exit(f"{config}: _class_name is {cfg['_class_name']!r}, expected AutoencoderKL")

    state = load_state(weights)
    if not any(k.startswith("decoder.") for k in state):
        sys.exit(f"{weights}: no decoder.* tensors (an ldm-format checkpoint? see --help)")
    keep = {k: np.ascontiguousarray(v.astype(DTYPES[a.dtype])) for k, v in state.items()
            if k.startswith("decoder.") or k.startswith("post_quant_conv.")}
    os.makedirs(a.out_dir, exist_ok=True)
    save_file(keep, os.path.join(a.out_dir, "decoder.safetensors"),
              metadata={"source": os.path.basename(weights), "dtype": a.dtype})
    shutil.copyfile(config, os.path.join(a.out_dir, "config.json"))
    n = sum(v.size for v in keep.values())
    print(f"{a.out_dir}/decoder.safetensors: {len(keep)} tensors, {n:,} parameters ({a.dtype}); "
          f"scaling_factor {cfg.get('scaling_factor', 0.18215)}")


if __name__ == "__main__":
    main()
