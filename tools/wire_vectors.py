#!/usr/bin/env python3
"""Reference vectors for Tests/WireTests/ChecksumTests.swift, from independent implementations.

XXH64: the system libxxhash (libxxhash0, the xxHash authors' C library) through ctypes.
CRC32C: a bit-at-a-time reference written from the definition (reflected polynomial 0x82F63B78, init and final
xor 0xFFFFFFFF), independent of the table-driven Swift code; it is checked here against RFC 3720 §B.4 vectors.
Inputs: the byte pattern (i * 31 + 7) & 0xFF for i in 0..<n, for each n below. Prints Swift literals to paste.
"""
import ctypes

lib = ctypes.CDLL("libxxhash.so.0")
lib.XXH64.restype = ctypes.c_uint64
lib.XXH64.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283
assert crc32c(bytes(32)) == 0x8A9136AA
assert crc32c(b"\xff" * 32) == 0x62A8AB43
assert crc32c(bytes(range(32))) == 0x46DD794E
assert crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C

lengths = [0, 1, 3, 4, 7, 8, 15, 16, 31, 32, 33, 63, 64, 100, 255, 1000, 4097]
print("// (length, xxh64 seed 0, crc32c) of pattern(n)")
for n in lengths:
    data = bytes(((i * 31 + 7) & 0xFF) for i in range(n))
    print(f"({n}, 0x{lib.XXH64(data, n, 0):016X}, 0x{crc32c(data):08X}),")
print("// xxh64 with seed 0x9E3779B97F4A7C15 of pattern(100):",
      f"0x{lib.XXH64(bytes(((i * 31 + 7) & 0xFF) for i in range(100)), 100, 0x9E3779B97F4A7C15):016X}")
