#!/usr/bin/env python3
"""Write the MLP-classifier and FID-digits fixtures into Tests/TrainingTests/Fixtures/.

    python3 tools/make_classifier_fixtures.py

mlp_relu.safetensors, mlp_silu.safetensors: a plain-torch MLP Linear → act → … → Linear in float64 with
softmax cross-entropy (mean over the batch). Parameters and inputs are drawn, rounded to float32 values, then used
in float64, so a float32 engine loads exactly the values the reference used. Stored (F32 unless said):
    param.layers.<i>.weight [out, in], param.layers.<i>.bias [out]   (the model, torch nn.Linear layout)
    x [B, in], labels [B] (I64)
    logits [B, classes], features [B, width of the last hidden layer] (post-activation)
    grad.layers.<i>.weight / bias: d loss / d param from torch autograd
    metadata: widths (comma list), activation, loss (repr of the float64 value)

fd_digits.safetensors: the FID-digits pipeline on fixed small sets. A ReLU MLP 64 → 32 → 16 → 10 (param.*),
images_a [100, 64] and images_b [90, 64] in [-1, 1]. numpy float64: features = penultimate activations, moments
with np.cov (n − 1), FD = |μa − μb|² + tr Σa + tr Σb − 2 tr sqrtm(Σa Σb) (scipy.linalg.sqrtm, pytorch-fid's
formula). metadata fd_features and fd_pixels hold the two FDs (repr of float64).
"""
import os

import numpy as np
import torch

from safetensors_io import write_raw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "TrainingTests", "Fixtures")


def f32(a):
    return np.asarray(a, dtype=np.float32)


def write(path, tensors, metadata):
    raw = {}
    for k, v in tensors.items():
        v = np.ascontiguousarray(v)
        if v.dtype == np.int64:
            raw[k] = ("I64", v.shape, v.astype("<i8").tobytes())
        else:
            raw[k] = ("F32", v.shape, f32(v).astype("<f4").tobytes())
    write_raw(path, raw)
    # write_raw has no metadata: rewrite the header with __metadata__ added (sorted keys, as SafetensorsWriter).
    import json, struct
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    header["__metadata__"] = {k: str(v) for k, v in sorted(metadata.items())}
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(data)


def init_params(widths, rng):
    ps = []
    for i in range(len(widths) - 1):
        bound = 1 / np.sqrt(widths[i])
        w = f32(rng.uniform(-bound, bound, (widths[i + 1], widths[i])))
        b = f32(rng.uniform(-bound, bound, widths[i + 1]))
        ps.append((w, b))
    return ps


def forward(params, x, act):
    h = x
    feats = None
    for i, (w, b) in enumerate(params):
        h = h @ w.T + b
        if i < len(params) - 1:
            h = torch.relu(h) if act == "relu" else torch.nn.functional.silu(h)
            feats = h
    return h, feats


def mlp_case(name, widths, act, batch, seed):
    rng = np.random.default_rng(seed)
    params = init_params(widths, rng)
    # inputs with a few large rows, as the noise classifier's log-RMS feature makes them
    x = f32(rng.standard_normal((batch, widths[0])) * rng.choice([0.5, 1, 3], (batch, 1)))
    labels = rng.integers(0, widths[-1], batch).astype(np.int64)
    tp = [(torch.tensor(w, dtype=torch.float64, requires_grad=True), torch.tensor(b, dtype=torch.float64, requires_grad=True))
          for w, b in params]
    logits, feats = forward(tp, torch.tensor(x, dtype=torch.float64), act)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(labels))
    loss.backward()
    t = {"x": x, "labels": labels, "logits": logits.detach().numpy(), "features": feats.detach().numpy()}
    for i, (w, b) in enumerate(tp):
        t[f"param.layers.{i}.weight"] = params[i][0]
        t[f"param.layers.{i}.bias"] = params[i][1]
        t[f"grad.layers.{i}.weight"] = w.grad.numpy()
        t[f"grad.layers.{i}.bias"] = b.grad.numpy()
    write(os.path.join(OUT, name + ".safetensors"), t,
          {"widths": ",".join(map(str, widths)), "activation": act, "loss": repr(loss.item())})
    print(name, "loss", loss.item())


def fd(mu1, s1, mu2, s2):
    from scipy import linalg
    covmean = linalg.sqrtm(s1.dot(s2))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def fd_case():
    rng = np.random.default_rng(7)
    widths = [64, 32, 16, 10]
    # weights ±3/√fan_in and positive hidden biases keep every ReLU unit active on some inputs (a dead unit makes
    # the feature covariance singular, where sqrtm loses accuracy)
    params = [(w * 3, np.abs(b) + f32(0.1)) for w, b in init_params(widths, rng)]
    a = f32(np.clip(rng.standard_normal((100, 64)) * 0.6 - 0.3, -1, 1))
    b = f32(np.clip(rng.standard_normal((90, 64)) * 0.5 + rng.standard_normal(64) * 0.2 - 0.4, -1, 1))
    tp = [(torch.tensor(w, dtype=torch.float64), torch.tensor(bb, dtype=torch.float64)) for w, bb in params]

    def stats(x):
        x = np.asarray(x, dtype=np.float64)
        return x.mean(0), np.cov(x, rowvar=False)

    fa = forward(tp, torch.tensor(a, dtype=torch.float64), "relu")[1].numpy()
    fb = forward(tp, torch.tensor(b, dtype=torch.float64), "relu")[1].numpy()
    fd_feat = fd(*stats(fa), *stats(fb))
    fd_pix = fd(*stats(a), *stats(b))
    t = {"images_a": a, "images_b": b}
    for i, (w, bb) in enumerate(params):
        t[f"param.layers.{i}.weight"] = w
        t[f"param.layers.{i}.bias"] = bb
    write(os.path.join(OUT, "fd_digits.safetensors"), t,
          {"widths": ",".join(map(str, widths)), "activation": "relu", "fd_features": repr(fd_feat), "fd_pixels": repr(fd_pix)})
    print("fd_digits features", fd_feat, "pixels", fd_pix)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    mlp_case("mlp_relu", [65, 24, 16, 30], "relu", 12, 1)
    mlp_case("mlp_silu", [64, 20, 10], "silu", 9, 2)
    fd_case()
