#!/usr/bin/env python3
"""Write the FID-statistics fixtures into Tests/FIDTests/Fixtures/ (run once, commit the output; numpy + scipy only).

    python3 tools/make_fid_fixtures.py     # about 1 s, ~60 KB

Files, every one written by numpy/scipy/zlib (the references the Swift readers and metrics are checked against):
- `savez.npz`: `np.savez` (STORED entries, numpy's ZIP64 extra fields): `mu` <f8 [5], `sigma` <f8 [5, 5],
  `labels` |u1 [3], `f4` <f4 [2, 3], `i8` <i8 [4], `scalar` <f8 [] (0-d).
- `compressed.npz`: `np.savez_compressed` (DEFLATE entries): `mu`, `sigma` as above plus `ramp` |u1 [4096] (long
  matches: dynamic Huffman blocks), `noise` |u1 [3000] (incompressible: zlib's stored blocks inside DEFLATE) and
  `tiny` |u1 [5] (fixed Huffman codes).
- `v2.npy`: format 2.0 header (`np.lib.format.write_array(..., version=(2, 0))`), <f4 [3, 2].
- `samples.npz`: `np.savez(arr_0=uint8 [6, 16, 12, 3])`, an ADM/DiT `sample_ddp.py`-style sample batch.
- `png/*.png`: 7×5 images encoded here with zlib, one per colour type (gray, gray+alpha, RGB, RGBA, palette at
  8 bits; gray at 1, 2, 4 bits) with the five filter types cycling over the rows, one image per filter type
  (RGB); `interlaced.png` (Adam7 flag) and `bad_crc.png` (one flipped CRC byte) must be refused.
  `png_expected.npz`: the RGB [h, w, 3] uint8 PIL's `convert('RGB')` gives for each (gray replicated, alpha
  dropped, palette looked up, sub-byte gray scaled to 0…255); checked against PIL when it is installed (PIL 13.0).
- `features.npz`: float32 feature sets `x` [120, 32] and `y` [100, 32] (non-Gaussian: ReLU of a random affine map);
  `mu_x`, `sigma_x`, `mu_y`, `sigma_y` (np.mean, np.cov(rowvar=False) in float64, as pytorch-fid); `fid`: pytorch-fid's
  `calculate_frechet_distance` (scipy.linalg.sqrtm of σ₁σ₂); `kid_subsets_x`, `kid_subsets_y` int64 [5, 50]
  (numpy-chosen subset rows), `kid_values` [5] (unbiased MMD² with k = (xᵀy/d + 1)³ per subset, torch-fidelity's
  `polynomial_mmd` in float64), `kid_mean`, `kid_std` (np.mean, np.std of those); `kid_full`: MMD² of the first
  100 rows of x against all of y (one subset of m = 100).
"""

import io
import os
import struct
import warnings
import zlib

import numpy as np
from scipy import linalg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "FIDTests", "Fixtures")


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid 0.3 `calculate_frechet_distance`, verbatim in substance."""
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # scipy ≥ 1.16 deprecates `disp`; pytorch-fid passes it
        covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError("imaginary component")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def polynomial_mmd(x, y):
    """torch-fidelity `polynomial_mmd` + `mmd2(..., 'unbiased')`: degree 3, gamma 1/d, coef0 1."""
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m = x.shape[0]
    return float((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.sum() / (m * m))


def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def filter_rows(rows, bpp, filters):
    out = b""
    prev = bytes(len(rows[0]))
    for y, row in enumerate(rows):
        f = filters[y % len(filters)]
        line = bytearray()
        for i, v in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][f]
            line.append((v - pred) & 0xFF)
        out += bytes([f]) + bytes(line)
        prev = row
    return out


def encode_png(width, height, colour, depth, rows, filters, palette=None, interlace=0):
    bpp = max(1, {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour] * depth // 8)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
    if palette is not None:
        data += png_chunk(b"PLTE", bytes(palette))
    raw = filter_rows(rows, bpp, filters)
    # Two IDAT chunks: the decoder must concatenate them.
    z = zlib.compress(raw, 9)
    data += png_chunk(b"IDAT", z[: len(z) // 2]) + png_chunk(b"IDAT", z[len(z) // 2:])
    return data + png_chunk(b"IEND", b"")


def pack_bits(values, depth):
    out, acc, n = bytearray(), 0, 0
    for v in values:
        acc = (acc << depth) | v
        n += depth
        if n == 8:
            out.append(acc)
            acc, n = 0, 0
    if n:
        out.append(acc << (8 - n))
    return bytes(out)


def main():
    os.makedirs(os.path.join(OUT, "png"), exist_ok=True)
    rng = np.random.default_rng(20261203)

    a = rng.standard_normal((5, 5))
    mu5, sigma5 = rng.standard_normal(5), a @ a.T
    np.savez(os.path.join(OUT, "savez.npz"), mu=mu5, sigma=sigma5, labels=np.array([0, 7, 255], np.uint8),
             f4=np.array([[1.5, -2.25, 3e-8], [4.0, 5.0, 6.0]], np.float32), i8=np.array([-3, 0, 5, 1 << 40], np.int64),
             scalar=np.float64(2.5))
    ramp = (np.arange(4096) % 251).astype(np.uint8)
    np.savez_compressed(os.path.join(OUT, "compressed.npz"), mu=mu5, sigma=sigma5, ramp=ramp,
                        noise=rng.integers(0, 256, 3000, dtype=np.uint8), tiny=np.array([1, 2, 3, 2, 1], np.uint8))
    with open(os.path.join(OUT, "v2.npy"), "wb") as f:
        np.lib.format.write_array(f, np.arange(6, dtype=np.float32).reshape(3, 2) / 4, version=(2, 0))
    np.savez(os.path.join(OUT, "samples.npz"), arr_0=rng.integers(0, 256, (6, 16, 12, 3), dtype=np.uint8))

    w, h = 7, 5
    rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    gray = rng.integers(0, 256, (h, w), dtype=np.uint8)
    expected = {}
    cycle = [0, 1, 2, 3, 4]

    def save(name, data, rgb):
        with open(os.path.join(OUT, "png", name + ".png"), "wb") as f:
            f.write(data)
        if rgb is not None:
            expected[name] = rgb.astype(np.uint8)
            try:  # cross-check the expectation against PIL, what pytorch-fid decodes with, when it is installed
                from PIL import Image
                assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), expected[name]), name
            except ImportError:
                pass

    def rows_of(img):
        return [bytes(r.reshape(-1)) for r in img]

    save("rgb8", encode_png(w, h, 2, 8, rows_of(rgba[..., :3]), cycle), rgba[..., :3])
    save("rgba8", encode_png(w, h, 6, 8, rows_of(rgba), cycle), rgba[..., :3])
    save("gray8", encode_png(w, h, 0, 8, rows_of(gray), cycle), np.repeat(gray[..., None], 3, axis=2))
    ga = np.stack([gray, rgba[..., 3]], axis=2)
    save("grayalpha8", encode_png(w, h, 4, 8, rows_of(ga), cycle), np.repeat(gray[..., None], 3, axis=2))
    palette = rng.integers(0, 256, (6, 3), dtype=np.uint8)
    idx = rng.integers(0, 6, (h, w), dtype=np.uint8)
    save("palette8", encode_png(w, h, 3, 8, rows_of(idx), cycle, palette=palette.reshape(-1)), palette[idx])
    for depth in (1, 2, 4):
        levels = rng.integers(0, 1 << depth, (h, w))
        rows = [pack_bits(r, depth) for r in levels]
        g = (levels * 255 // ((1 << depth) - 1)).astype(np.uint8)
        save(f"gray{depth}", encode_png(w, h, 0, depth, rows, cycle), np.repeat(g[..., None], 3, axis=2))
    for f in cycle:
        save(f"filter{f}", encode_png(w, h, 2, 8, rows_of(rgba[..., :3]), [f]), rgba[..., :3])
    save("interlaced", encode_png(w, h, 2, 8, rows_of(rgba[..., :3]), [0], interlace=1), None)
    good = bytearray(encode_png(w, h, 2, 8, rows_of(rgba[..., :3]), [1]))
    good[33 + 8 + 4] ^= 0xFF  # first byte of the first IDAT's data: its CRC no longer matches
    save("bad_crc", bytes(good), None)
    np.savez(os.path.join(OUT, "png_expected.npz"), **expected)

    d = 32
    wx, wy = rng.standard_normal((d, d)) / np.sqrt(d), rng.standard_normal((d, d)) / np.sqrt(d)
    x = np.maximum(rng.standard_normal((120, d)) @ wx + 0.3, 0).astype(np.float32)
    y = np.maximum(rng.standard_normal((100, d)) @ wy + 0.2, 0).astype(np.float32)
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    mu_x, sigma_x = xd.mean(axis=0), np.cov(xd, rowvar=False)
    mu_y, sigma_y = yd.mean(axis=0), np.cov(yd, rowvar=False)
    fid = frechet_distance(mu_x, sigma_x, mu_y, sigma_y)
    sx = np.stack([rng.choice(120, 50, replace=False) for _ in range(5)])
    sy = np.stack([rng.choice(100, 50, replace=False) for _ in range(5)])
    kv = np.array([polynomial_mmd(xd[sx[i]], yd[sy[i]]) for i in range(5)])
    np.savez(os.path.join(OUT, "features.npz"), x=x, y=y, mu_x=mu_x, sigma_x=sigma_x, mu_y=mu_y, sigma_y=sigma_y,
             fid=np.float64(fid), kid_subsets_x=sx.astype(np.int64), kid_subsets_y=sy.astype(np.int64), kid_values=kv,
             kid_mean=np.float64(kv.mean()), kid_std=np.float64(kv.std()), kid_full=np.float64(polynomial_mmd(xd[:100], yd)))
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print(f"fid {fid:.6f}  kid {kv.mean():.6e} ± {kv.std():.3e}  fixtures {total / 1024:.1f} KiB in {OUT}")


if __name__ == "__main__":
    main()
