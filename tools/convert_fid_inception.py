#!/usr/bin/env python3
"""Convert pytorch-fid's Inception weights (`pt_inception-2015-12-05-6726825d.pth`) to safetensors for moebench.

    python3 tools/convert_fid_inception.py pt_inception-2015-12-05-6726825d.pth fid_inception.safetensors

The .pth (a torch pickle, ~91 MB; pytorch-fid downloads it from
github.com/mseitzer/pytorch-fid/releases/download/fid_weights/) is torchvision Inception3's state dict with 1008
classes and no AuxLogits. Every floating tensor is written as F32 under its own name (`Conv2d_1a_3x3.conv.weight`,
`Mixed_5b.branch1x1.bn.running_var`, …, `fc.weight`); `num_batches_tracked` counters are dropped. Before writing, the
state dict is loaded with strict=True into pytorch-fid's FID Inception (built through tools/fid_inception_stub.py,
no torchvision needed), so a file of another Inception variant is refused. Vision.FIDInceptionWeights reads the
result and folds each BatchNorm (eps 0.001) into its conv. Needs torch, numpy, safetensors and pytorch_fid.
"""

import argparse
import os
import sys

import numpy as np
import torch
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fid_inception_stub  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pth")
    ap.add_argument("out")
    a = ap.parse_args()
    state = torch.load(a.pth, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "Conv2d_1a_3x3.conv.weight" not in state:
        sys.exit(f"{a.pth}: not an Inception3 state dict (no Conv2d_1a_3x3.conv.weight)")

    fid_inception_stub.install()
    import pytorch_fid.inception as fid
    fid.load_state_dict_from_url = lambda *_a, **_k: state
    try:
        fid.InceptionV3([3])  # loads `state` with strict=True into the FID network
    except RuntimeError as e:
        sys.exit(f"{a.pth}: does not load into pytorch-fid's FID Inception: {e}")

    out = {k: np.ascontiguousarray(v.float().numpy()) for k, v in state.items() if v.is_floating_point()}
    save_file(out, a.out, metadata={"source": os.path.basename(a.pth), "bn_eps": "0.001"})
    print(f"{a.out}: {len(out)} tensors, {sum(v.size for v in out.values()):,} values")


if __name__ == "__main__":
    main()
