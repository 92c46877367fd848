#!/usr/bin/env python3
"""Reference vectors for Tests/WireTests/ChecksumTests.swift, independent of the C code under test.

CRC32C: a bit-at-a-time reference written from the definition (reflected polynomial 0x82F63B78, init and final
xor 0xFFFFFFFF), checked here against the RFC 3720 §B.4 vectors and the catalogue check value of "123456789".
Inputs:
  pattern(n): the bytes (i * 31 + 7) & 0xFF for i in 0..<n, for every n in 0...100 and a few larger n;
  random(n):  the first n bytes of the little-endian u64 stream of SplitMix64 seeded with 2024 (the same
              generator as SeededRNG in Tests/WireTests/TestSupport.swift), for the lengths in RANDOM_LENGTHS.
The folding constants of Sources/CSupport/crc32c.c are printed too (K(n) = reflect32(x^n mod P) << 1).
Prints Swift literals to paste into the test.
"""
import struct

POLY = 0x82F63B78


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (POLY if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283
assert crc32c(bytes(32)) == 0x8A9136AA
assert crc32c(b"\xff" * 32) == 0x62A8AB43
assert crc32c(bytes(range(32))) == 0x46DD794E
assert crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C


def pattern(n: int) -> bytes:
    return bytes(((i * 31 + 7) & 0xFF) for i in range(n))


def splitmix_bytes(seed: int, n: int) -> bytes:
    state, out, mask = seed, bytearray(), (1 << 64) - 1
    while len(out) < n:
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out += struct.pack("<Q", z ^ (z >> 31))
    return bytes(out[:n])


def fold_constant(n: int, p: int = 0x11EDC6F41) -> int:
    r = 1
    for _ in range(n):
        r <<= 1
        if r >> 32 & 1:
            r ^= p
    return int(f"{r:032b}"[::-1], 2) << 1


# The same formula with CRC-32/IEEE gives the Linux kernel's published constants for a 512-bit fold.
assert fold_constant(512 + 32, 0x104C11DB7) == 0x154442BD4
assert fold_constant(512 - 32, 0x104C11DB7) == 0x1C6E41596

RANDOM_LENGTHS = [255, 256, 257, 319, 320, 1000, 4096 + 7, 24576, 24576 + 255, 65536 + 13, (1 << 20) + 3]

print("    // crc32c(pattern(n)) for n in 0...100")
vals = [crc32c(pattern(n)) for n in range(101)]
for i in range(0, 101, 6):
    print("        " + ", ".join(f"0x{v:08X}" for v in vals[i:i + 6]) + ",")
print("    // (n, crc32c(pattern(n)))")
for n in [255, 1000, 4097]:
    print(f"        ({n}, 0x{crc32c(pattern(n)):08X}),")
big = splitmix_bytes(2024, max(RANDOM_LENGTHS))
print("    // (n, crc32c(random(n)))")
for n in RANDOM_LENGTHS:
    print(f"        ({n}, 0x{crc32c(big[:n]):08X}),")
print("    // fold constants (D: K(D+32), K(D-32))")
for d in [2048, 1536, 1024, 512, 384, 256, 128]:
    print(f"    // {d}: 0x{fold_constant(d + 32):x}, 0x{fold_constant(d - 32):x}")
