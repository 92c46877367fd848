// CRC32C (Castagnoli; reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF) for the wire
// format (docs/protocol.md §1). Two implementations with identical results:
//  - moe_crc32c_sw: portable slicing-by-8 (eight 256-entry tables, 8 input bytes per step);
//  - crc32c_hw (x86-64 with SSE4.2): the CRC32 instruction on three independent streams (it has a latency of
//    about 3 cycles and a throughput of 1 per cycle, so three streams keep it busy), whose CRCs are combined by
//    "append n zero bytes" operators over GF(2) (four 256-entry tables per stream length), the method of
//    Mark Adler's public crc32c.c;
//  - crc32c_vpclmul (x86-64 with AVX-512 and VPCLMULQDQ): carry-less multiplication folding of 256-byte blocks,
//    reduced with the CRC32 instruction (below).
// moe_crc32c picks the fastest path the CPU has once, at load time (CPUID via __builtin_cpu_supports).
#include <stdint.h>
#include <string.h>
#include "csupport.h"

#define POLY 0x82F63B78u

static uint32_t sw_table[8][256];

static inline uint64_t load64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

uint32_t moe_crc32c_sw(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = data;
    uint64_t c = crc ^ 0xFFFFFFFFu;
    while (n >= 8) {
        uint64_t w = load64(p) ^ c;   // little-endian host (x86-64, arm64)
        c = sw_table[7][w & 0xFF] ^ sw_table[6][(w >> 8) & 0xFF] ^ sw_table[5][(w >> 16) & 0xFF]
          ^ sw_table[4][(w >> 24) & 0xFF] ^ sw_table[3][(w >> 32) & 0xFF] ^ sw_table[2][(w >> 40) & 0xFF]
          ^ sw_table[1][(w >> 48) & 0xFF] ^ sw_table[0][w >> 56];
        p += 8; n -= 8;
    }
    while (n--) c = (c >> 8) ^ sw_table[0][(c ^ *p++) & 0xFF];
    return (uint32_t)c ^ 0xFFFFFFFFu;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

// Stream lengths of the three-way loops: LONG for bulk data, SHORT for what is left.
#define LONG 8192
#define SHORT 256
// zeros_long[k][b]: the CRC register after appending LONG zero bytes to a register whose byte k is b and whose
// other bytes are 0 (the operator is linear, so the four lookups xor to the full shift).
static uint32_t zeros_long[4][256], zeros_short[4][256];

static uint32_t gf2_times(const uint32_t *mat, uint32_t vec) {
    uint32_t sum = 0;
    while (vec) { if (vec & 1) sum ^= *mat; vec >>= 1; mat++; }
    return sum;
}

static void gf2_square(uint32_t *square, const uint32_t *mat) {
    for (int n = 0; n < 32; n++) square[n] = gf2_times(mat, mat[n]);
}

// The 32×32 GF(2) matrix that appends `len` zero bytes to a (reflected) CRC register.
static void zeros_op(uint32_t *even, size_t len) {
    uint32_t odd[32];
    uint32_t row = 1;
    odd[0] = POLY;                       // one zero bit
    for (int n = 1; n < 32; n++) { odd[n] = row; row <<= 1; }
    gf2_square(even, odd);               // two zero bits
    gf2_square(odd, even);               // four zero bits
    // Repeated squaring: odd holds 2^k zero bits, here 1 byte; len is a power of two.
    do {
        gf2_square(even, odd);
        len >>= 1;
        if (len == 0) return;
        gf2_square(odd, even);
        len >>= 1;
    } while (len);
    memcpy(even, odd, sizeof(odd));
}

static void zeros_tables(uint32_t zeros[4][256], size_t len) {
    uint32_t op[32];
    zeros_op(op, len);
    for (uint32_t n = 0; n < 256; n++) {
        zeros[0][n] = gf2_times(op, n);
        zeros[1][n] = gf2_times(op, n << 8);
        zeros[2][n] = gf2_times(op, n << 16);
        zeros[3][n] = gf2_times(op, n << 24);
    }
}

static inline uint64_t shift(uint32_t zeros[4][256], uint64_t crc) {
    return zeros[0][crc & 0xFF] ^ zeros[1][(crc >> 8) & 0xFF] ^ zeros[2][(crc >> 16) & 0xFF] ^ zeros[3][(crc >> 24) & 0xFF];
}

// Advances the (uninverted) CRC register `c0` over n bytes with the CRC32 instruction.
__attribute__((target("sse4.2")))
static uint64_t hw_register(uint64_t c0, const unsigned char *p, size_t n) {
    while (n && ((uintptr_t)p & 7)) { c0 = _mm_crc32_u8((uint32_t)c0, *p++); n--; }
    while (n >= 3 * LONG) {
        uint64_t c1 = 0, c2 = 0;
        const unsigned char *end = p + LONG;
        do {
            c0 = _mm_crc32_u64(c0, load64(p));
            c1 = _mm_crc32_u64(c1, load64(p + LONG));
            c2 = _mm_crc32_u64(c2, load64(p + 2 * LONG));
            p += 8;
        } while (p < end);
        c0 = shift(zeros_long, c0) ^ c1;
        c0 = shift(zeros_long, c0) ^ c2;
        p += 2 * LONG; n -= 3 * LONG;
    }
    while (n >= 3 * SHORT) {
        uint64_t c1 = 0, c2 = 0;
        const unsigned char *end = p + SHORT;
        do {
            c0 = _mm_crc32_u64(c0, load64(p));
            c1 = _mm_crc32_u64(c1, load64(p + SHORT));
            c2 = _mm_crc32_u64(c2, load64(p + 2 * SHORT));
            p += 8;
        } while (p < end);
        c0 = shift(zeros_short, c0) ^ c1;
        c0 = shift(zeros_short, c0) ^ c2;
        p += 2 * SHORT; n -= 3 * SHORT;
    }
    while (n >= 8) { c0 = _mm_crc32_u64(c0, load64(p)); p += 8; n -= 8; }
    while (n) { c0 = _mm_crc32_u8((uint32_t)c0, *p++); n--; }
    return c0;
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const void *data, size_t n) {
    return (uint32_t)hw_register(crc ^ 0xFFFFFFFFu, data, n) ^ 0xFFFFFFFFu;
}

// Carry-less multiplication folding (Intel, "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ",
// 2009) with 512-bit VPCLMULQDQ. A 128-bit lane holding message bits that are followed by D more bits is replaced
// by lo64 ⊗ K(D+32) ⊕ hi64 ⊗ K(D−32), where K(n) = reflect32(x^n mod P) << 1 (the bit-reflected constants; with
// P = CRC-32/IEEE these reproduce the Linux kernel's 0x154442bd4 and 0x1c6e41596 for D = 512); the result is
// congruent mod P, so it can be xored into the lane D bits later. Constants from tools/wire_vectors.py.
#include <immintrin.h>
#define K2048 0xdcb17aa4ull, 0xb9e02b86ull
#define K1536 0xa87ab8a8ull, 0xab7aff2aull
#define K1024 0x6992cea2ull, 0x0d3b6092ull
#define K512  0x740eef02ull, 0x9e4addf8ull
#define K384  0x1c291d04ull, 0x1d82c63daull
#define K256  0x1384aa63aull, 0xba4fc28eull
#define K128  0xf20c0dfeull, 0x14cd00bd6ull
#define AVX512_TARGET __attribute__((target("sse4.2,pclmul,avx512f,avx512vl,vpclmulqdq")))

AVX512_TARGET static inline __m512i k512(uint64_t lo, uint64_t hi) {
    return _mm512_set_epi64((long long)hi, (long long)lo, (long long)hi, (long long)lo,
                            (long long)hi, (long long)lo, (long long)hi, (long long)lo);
}
AVX512_TARGET static inline __m512i fold512(__m512i x, __m512i k) {
    return _mm512_xor_si512(_mm512_clmulepi64_epi128(x, k, 0x00), _mm512_clmulepi64_epi128(x, k, 0x11));
}
AVX512_TARGET static inline __m128i fold128(__m128i x, uint64_t lo, uint64_t hi) {
    __m128i k = _mm_set_epi64x((long long)hi, (long long)lo);
    return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

// n ≥ 256: four 512-bit accumulators (256 bytes per step), then folded down to 128 bits, which the CRC32
// instruction reduces (two u64 steps from register 0 give the register of the whole folded prefix).
AVX512_TARGET static uint32_t crc32c_vpclmul(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = data;
    if (n < 256) return crc32c_hw(crc, data, n);
    __m512i x0 = _mm512_loadu_si512((const void *)p), x1 = _mm512_loadu_si512((const void *)(p + 64));
    __m512i x2 = _mm512_loadu_si512((const void *)(p + 128)), x3 = _mm512_loadu_si512((const void *)(p + 192));
    x0 = _mm512_xor_si512(x0, _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)(crc ^ 0xFFFFFFFFu))));
    p += 256; n -= 256;
    const __m512i k4 = k512(K2048);
    while (n >= 256) {
        x0 = _mm512_xor_si512(fold512(x0, k4), _mm512_loadu_si512((const void *)p));
        x1 = _mm512_xor_si512(fold512(x1, k4), _mm512_loadu_si512((const void *)(p + 64)));
        x2 = _mm512_xor_si512(fold512(x2, k4), _mm512_loadu_si512((const void *)(p + 128)));
        x3 = _mm512_xor_si512(fold512(x3, k4), _mm512_loadu_si512((const void *)(p + 192)));
        p += 256; n -= 256;
    }
    __m512i x = _mm512_xor_si512(_mm512_xor_si512(fold512(x0, k512(K1536)), fold512(x1, k512(K1024))),
                                 _mm512_xor_si512(fold512(x2, k512(K512)), x3));
    const __m512i k1 = k512(K512);
    while (n >= 64) {
        x = _mm512_xor_si512(fold512(x, k1), _mm512_loadu_si512((const void *)p));
        p += 64; n -= 64;
    }
    __m128i v = _mm_xor_si128(_mm_xor_si128(fold128(_mm512_extracti32x4_epi32(x, 0), K384),
                                            fold128(_mm512_extracti32x4_epi32(x, 1), K256)),
                              _mm_xor_si128(fold128(_mm512_extracti32x4_epi32(x, 2), K128),
                                            _mm512_extracti32x4_epi32(x, 3)));
    uint64_t c = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(v));
    c = _mm_crc32_u64(c, (uint64_t)_mm_extract_epi64(v, 1));
    return (uint32_t)hw_register(c, p, n) ^ 0xFFFFFFFFu;
}
#endif

static uint32_t (*crc32c_impl)(uint32_t, const void *, size_t) = moe_crc32c_sw;

__attribute__((constructor))
static void crc32c_init(void) {
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        sw_table[0][b] = c;
    }
    for (int k = 1; k < 8; k++)
        for (int b = 0; b < 256; b++) sw_table[k][b] = (sw_table[k - 1][b] >> 8) ^ sw_table[0][sw_table[k - 1][b] & 0xFF];
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) {
        zeros_tables(zeros_long, LONG);
        zeros_tables(zeros_short, SHORT);
        crc32c_impl = crc32c_hw;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
            && __builtin_cpu_supports("vpclmulqdq")) crc32c_impl = crc32c_vpclmul;
    }
#endif
}

uint32_t moe_crc32c(uint32_t crc, const void *data, size_t n) { return crc32c_impl(crc, data, n); }

uint32_t moe_crc32c_sse42(uint32_t crc, const void *data, size_t n) {
#if defined(__x86_64__)
    if (crc32c_impl != moe_crc32c_sw) return crc32c_hw(crc, data, n);
#endif
    return moe_crc32c_sw(crc, data, n);
}

int moe_crc32c_hardware(void) {
#if defined(__x86_64__)
    if (crc32c_impl == crc32c_vpclmul) return 2;
    if (crc32c_impl == crc32c_hw) return 1;
#endif
    return 0;
}
