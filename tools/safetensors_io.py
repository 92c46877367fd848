"""Minimal safetensors helpers that also handle BF16 (which numpy lacks).

File layout: 8-byte little-endian u64 header length N, N bytes of JSON header
{name: {"dtype", "shape", "data_offsets": [begin, end]}} (offsets relative to the data section), then the data.
The header is padded with spaces to a multiple of 8, as the safetensors library does.
"""

import json
import struct

import numpy as np

_NUMPY_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
                 "I16": np.int16, "I8": np.int8, "U8": np.uint8}


def f32_to_bf16_bits(x):
    """float32 -> bf16 bit patterns (uint16): round to nearest, ties to even, on the high 16 bits."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounding = 0x7FFF + ((bits >> 16) & 1)
    return ((bits + rounding) >> 16).astype(np.uint16)


def bf16_bits_to_f32(bits):
    """bf16 bit patterns (uint16) -> float32 (exact widening)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def write_raw(path, tensors):
    """Write {name: (dtype_string, shape, raw_bytes)} in name order. Used for BF16 files."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def write_bf16(path, tensors):
    """Write {name: float32 array} stored as BF16."""
    write_raw(path, {name: ("BF16", arr.shape, f32_to_bf16_bits(arr).tobytes()) for name, arr in tensors.items()})


def read_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return header, 8 + n


def read(path):
    """Read every tensor; returns {name: (dtype_string, ndarray)}; BF16 comes back widened to float32."""
    header, data_start = read_header(path)
    with open(path, "rb") as f:
        blob = f.read()
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = blob[data_start + begin:data_start + end]
        if info["dtype"] == "BF16":
            arr = bf16_bits_to_f32(np.frombuffer(raw, dtype="<u2"))
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(_NUMPY_DTYPES[info["dtype"]]).newbyteorder("<"))
        out[name] = (info["dtype"], arr.reshape(info["shape"]))
    return out
