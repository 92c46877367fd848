#!/usr/bin/env python3
"""Write the SD-VAE decoder fixtures into Tests/VisionTests/Fixtures/vae_<case>/ (run once, commit the output).

    python3 tools/make_vae_fixtures.py     # needs torch and diffusers (AutoencoderKL); about 5 s

Each case is a diffusers `AutoencoderKL` with a small config and RANDOM weights: diffusers' own initialisation,
then every GroupNorm affine parameter and every bias redrawn (so none is the trivial 1 or 0). Files per case:
- `config.json`: the diffusers config (`vae.save_config`), what a released VAE ships next to its weights;
- `weights.safetensors`: the decoder half of the state dict (`decoder.*`, `post_quant_conv.*`), F32, new-style
  attention names (`to_q`, `to_k`, `to_v`, `to_out.0`);
- `io.safetensors`: `latent` [B, 4, h, w] F32, the scaled latent a DiT produces; `sample` [B, 3, 8h, 8w] F32, the
  float64 reference of `vae.decode(latent / scaling_factor).sample` rounded to F32;
- `meta.json`: seed, scaling factor, max |sample|, and the float32-vs-float64 max |Δ| / max |ref| of diffusers itself
  (the floor any float32 implementation can expect).
"""

import json
import os

import numpy as np
import torch
from diffusers import AutoencoderKL
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "Tests", "VisionTests", "Fixtures")

CASES = {
    # Two resolutions (one upsampler), shortcut conv in the second up block, 8 groups of 2 / 4 channels.
    "small": dict(config=dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8), batch=2,
                  latent_hw=(6, 5), seed=11),
    # Three resolutions (two upsamplers), 4 groups; a 1-image batch.
    "three_level": dict(config=dict(block_out_channels=(8, 16, 16), layers_per_block=1, norm_num_groups=4), batch=1,
                        latent_hw=(4, 3), seed=12),
}


def build(case):
    torch.manual_seed(case["seed"])
    n = len(case["config"]["block_out_channels"])
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
                        **case["config"])
    g = torch.Generator().manual_seed(case["seed"] + 1000)
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        for m in vae.modules():
            if isinstance(m, torch.nn.GroupNorm):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
    return vae.eval()


def main():
    for name, case in CASES.items():
        vae = build(case)
        scale = float(vae.config.scaling_factor)
        h, w = case["latent_hw"]
        g = torch.Generator().manual_seed(case["seed"] + 2000)
        latent = torch.randn(case["batch"], 4, h, w, generator=g) * 0.8
        with torch.no_grad():
            ref64 = vae.double().decode(latent.double() / scale).sample
            ref32 = vae.float().decode(latent / scale).sample.double()
        floor = float((ref32 - ref64).abs().max() / ref64.abs().max())
        d = os.path.join(OUT_DIR, f"vae_{name}")
        os.makedirs(d, exist_ok=True)
        vae.save_config(d)
        state = {k: np.ascontiguousarray(v.detach().float().numpy()) for k, v in vae.state_dict().items()
                 if k.startswith("decoder.") or k.startswith("post_quant_conv.")}
        save_file(state, os.path.join(d, "weights.safetensors"))
        # ascontiguousarray: safetensors.numpy writes the raw buffer, and the decoder output can be a strided view.
        save_file({"latent": np.ascontiguousarray(latent.numpy(), dtype=np.float32),
                   "sample": np.ascontiguousarray(ref64.float().numpy())},
                  os.path.join(d, "io.safetensors"))
        meta = dict(seed=case["seed"], scaling_factor=scale, batch=case["batch"], latent_hw=[h, w],
                    max_abs_sample=float(ref64.abs().max()), float32_vs_float64_rel=floor,
                    parameters=int(sum(v.size for v in state.values())),
                    description=f"diffusers AutoencoderKL {case['config']}, random weights, decoder only")
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")
        print(name, json.dumps(meta))


if __name__ == "__main__":
    main()
