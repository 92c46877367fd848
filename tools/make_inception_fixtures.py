#!/usr/bin/env python3
"""Write the FID Inception fixture into Tests/VisionTests/Fixtures/fid_inception/ (run once, commit the output).

    python3 tools/make_inception_fixtures.py     # needs torch and pytorch_fid (not torchvision); about 10 s

The network is pytorch-fid's own `InceptionV3([3])` (resize to 299, 2x-1, FID blocks, pool3), built through the
`tools/fid_inception_stub.py` stand-in for torchvision, in float64, with DETERMINISTIC weights instead of the
released ones: every tensor is a function of its state-dict name, which the Swift test regenerates (the network up to
pool3 has 21.8 M parameters, too big to commit). For a tensor named K with n elements:
    u_i  = (SplitMix64(seed = FNV-1a-64(K)).next() >> 40) / 2^24, i = 0 … n-1      (as Tensor.SplitMix64)
    v_i  = 2 u_i - 1                                                                 (exact in float32)
    *.conv.weight [O, I, kh, kw]: v · float32(sqrt(6 / (I·kh·kw)))   (He-uniform: activations stay O(1))
    *.bn.weight 1 + 0.1 v, *.bn.bias 0.1 v, *.bn.running_mean 0.1 v, *.bn.running_var 1 + 0.2 v,
    fc.* 0.01 v, *.num_batches_tracked 0                                (arithmetic in float32)
Files: `io.safetensors` with `images` [B, 3, H, W] F32 (uint8 levels / 255, not 299², so the resize runs) and
`pool3` [B, 2048] F32 (the float64 reference rounded); `meta.json` (float32-vs-float64 floor of pytorch-fid itself).
"""

import json
import math
import os
import sys

import numpy as np
import torch
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fid_inception_stub  # noqa: E402

fid_inception_stub.install()
import pytorch_fid.inception as fid  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "Tests", "VisionTests", "Fixtures", "fid_inception")
M64 = (1 << 64) - 1


def fnv1a64(text):
    h = 0xCBF29CE484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def splitmix_units(seed, n):
    """n float32 values u in [0, 1) with 24 bits, as Tensor.SplitMix64(seed).nextUnitFloat() in sequence."""
    with np.errstate(over="ignore"):
        state = np.uint64(seed) + np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = state
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def deterministic_value(name, shape):
    n = int(np.prod(shape)) if len(shape) else 1
    if name.endswith("num_batches_tracked"):
        return np.zeros(shape, dtype=np.int64)
    v = np.float32(2) * splitmix_units(fnv1a64(name), n) - np.float32(1)
    f = np.float32
    if name.endswith(".conv.weight"):
        out = v * f(math.sqrt(6.0 / int(np.prod(shape[1:]))))
    elif name.endswith(".bn.weight"):
        out = f(1) + f(0.1) * v
    elif name.endswith(".bn.running_var"):
        out = f(1) + f(0.2) * v
    elif name.endswith((".bn.bias", ".bn.running_mean")):
        out = f(0.1) * v
    elif name.startswith("fc."):
        out = f(0.01) * v
    else:
        raise ValueError(f"no rule for {name}")
    return out.astype(np.float32).reshape(shape)


def fake_loader(*_args, **_kwargs):
    """Stands in for pytorch-fid's download of the released weights: deterministic values for every key of the
    Inception3 it just built (same names and shapes as the released file)."""
    model = fid_inception_stub.LAST_BUILT
    return {k: torch.from_numpy(deterministic_value(k, tuple(v.shape))) for k, v in model.state_dict().items()}


def main():
    fid.load_state_dict_from_url = fake_loader
    net = fid.InceptionV3([fid.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    rng = np.random.default_rng(7)
    images = (rng.integers(0, 256, size=(2, 3, 64, 48)) / 255.0).astype(np.float32)
    with torch.no_grad():
        ref64 = net.double()(torch.from_numpy(images).double())[0].reshape(2, 2048)
        ref32 = net.float()(torch.from_numpy(images))[0].reshape(2, 2048).double()
    floor = float((ref32 - ref64).abs().max() / ref64.abs().max())
    os.makedirs(OUT_DIR, exist_ok=True)
    save_file({"images": np.ascontiguousarray(images), "pool3": np.ascontiguousarray(ref64.float().numpy())},
              os.path.join(OUT_DIR, "io.safetensors"))
    meta = dict(images=list(images.shape), max_abs_pool3=float(ref64.abs().max()), min_pool3=float(ref64.min()),
                float32_vs_float64_rel=floor, parameters=int(sum(p.numel() for p in net.parameters())),
                description="pytorch-fid InceptionV3([3]) (FID blocks, resize 299, 2x-1), deterministic weights "
                            "by name (see make_inception_fixtures.py), float64")
    with open(os.path.join(OUT_DIR, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
