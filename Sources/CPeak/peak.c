// Register-only FMA / BF16 dot-product streams for the physical peak. The loops are inline assembly so the
// measurement does not depend on the optimisation level SwiftPM compiles C targets with (debug builds use -O0).
#define _GNU_SOURCE
#include "cpeak.h"
#include <cpuid.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <time.h>

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

int moe_peak_features(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 27))) return 0;                       // OSXSAVE: xgetbv available
    if ((xgetbv0() & 0xE6) != 0xE6) return 0;              // XMM, YMM, opmask, ZMM_Hi256, Hi16_ZMM enabled
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!(b & (1u << 16))) return 0;                       // AVX512F
    int f = 1;
    unsigned max7 = a;
    if (max7 >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5))) f |= 2;  // AVX512_BF16
    return f;
}

// 24 instructions per trip on zmm0..zmm11 (each accumulator twice), sources zmm12, zmm13 (all zero: no
// denormals, no overflow; throughput does not depend on the values).
__attribute__((target("avx512f"), noinline))
static void fma_stream(long iterations) {
    __asm__ volatile(
        "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
        "vmovaps %%zmm0, %%zmm1\n\t vmovaps %%zmm0, %%zmm2\n\t vmovaps %%zmm0, %%zmm3\n\t"
        "vmovaps %%zmm0, %%zmm4\n\t vmovaps %%zmm0, %%zmm5\n\t vmovaps %%zmm0, %%zmm6\n\t"
        "vmovaps %%zmm0, %%zmm7\n\t vmovaps %%zmm0, %%zmm8\n\t vmovaps %%zmm0, %%zmm9\n\t"
        "vmovaps %%zmm0, %%zmm10\n\t vmovaps %%zmm0, %%zmm11\n\t vmovaps %%zmm0, %%zmm12\n\t"
        "vmovaps %%zmm0, %%zmm13\n\t"
        "1:\n\t"
        "vfmadd231ps %%zmm12, %%zmm13, %%zmm0\n\t vfmadd231ps %%zmm12, %%zmm13, %%zmm1\n\t"
        "vfmadd231ps %%zmm12, %%zmm13, %%zmm2\n\t vfmadd231ps %%zmm12, %%zmm13, %%zmm3\n\t"
        "vfmadd231ps %%zmm12, %%zmm13, %%zmm4\n\t vfmadd231ps %%zmm12, %%zmm13, %%zmm5\n\t"
        "vfmadd231ps %%zmm12, %%zmm13, %%zmm6\n\t vfmadd231ps %%zmm12, %%zmm13, %%zmm7\n\t"
        "vfmadd231ps %%zmm12, %%zmm13, %%zmm8\n\t vfmadd231ps %%zmm12, %%zmm13, %%zmm9\n\t"
        "vfmadd231ps %%zmm12, %%zmm13, %%zmm10\n\t vfmadd231ps %%zmm12, %%zmm13, %%zmm11\n\t"
        "vfmadd231ps %%zmm12, %%zmm13, %%zmm0\n\t vfmadd231ps %%zmm12, %%zmm13, %%zmm1\n\t"
        "vfmadd231ps %%zmm12, %%zmm13, %%zmm2\n\t vfmadd231ps %%zmm12, %%zmm13, %%zmm3\n\t"
        "vfmadd231ps %%zmm12, %%zmm13, %%zmm4\n\t vfmadd231ps %%zmm12, %%zmm13, %%zmm5\n\t"
        "vfmadd231ps %%zmm12, %%zmm13, %%zmm6\n\t vfmadd231ps %%zmm12, %%zmm13, %%zmm7\n\t"
        "vfmadd231ps %%zmm12, %%zmm13, %%zmm8\n\t vfmadd231ps %%zmm12, %%zmm13, %%zmm9\n\t"
        "vfmadd231ps %%zmm12, %%zmm13, %%zmm10\n\t vfmadd231ps %%zmm12, %%zmm13, %%zmm11\n\t"
        "dec %0\n\t"
        "jnz 1b\n\t"
        "vzeroupper\n\t"
        : "+r"(iterations)
        :
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
          "xmm12", "xmm13", "cc");
}

__attribute__((target("avx512f,avx512bf16"), noinline))
static void dpbf16_stream(long iterations) {
    __asm__ volatile(
        "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
        "vmovaps %%zmm0, %%zmm1\n\t vmovaps %%zmm0, %%zmm2\n\t vmovaps %%zmm0, %%zmm3\n\t"
        "vmovaps %%zmm0, %%zmm4\n\t vmovaps %%zmm0, %%zmm5\n\t vmovaps %%zmm0, %%zmm6\n\t"
        "vmovaps %%zmm0, %%zmm7\n\t vmovaps %%zmm0, %%zmm8\n\t vmovaps %%zmm0, %%zmm9\n\t"
        "vmovaps %%zmm0, %%zmm10\n\t vmovaps %%zmm0, %%zmm11\n\t vmovaps %%zmm0, %%zmm12\n\t"
        "vmovaps %%zmm0, %%zmm13\n\t"
        "1:\n\t"
        "vdpbf16ps %%zmm12, %%zmm13, %%zmm0\n\t vdpbf16ps %%zmm12, %%zmm13, %%zmm1\n\t"
        "vdpbf16ps %%zmm12, %%zmm13, %%zmm2\n\t vdpbf16ps %%zmm12, %%zmm13, %%zmm3\n\t"
        "vdpbf16ps %%zmm12, %%zmm13, %%zmm4\n\t vdpbf16ps %%zmm12, %%zmm13, %%zmm5\n\t"
        "vdpbf16ps %%zmm12, %%zmm13, %%zmm6\n\t vdpbf16ps %%zmm12, %%zmm13, %%zmm7\n\t"
        "vdpbf16ps %%zmm12, %%zmm13, %%zmm8\n\t vdpbf16ps %%zmm12, %%zmm13, %%zmm9\n\t"
        "vdpbf16ps %%zmm12, %%zmm13, %%zmm10\n\t vdpbf16ps %%zmm12, %%zmm13, %%zmm11\n\t"
        "vdpbf16ps %%zmm12, %%zmm13, %%zmm0\n\t vdpbf16ps %%zmm12, %%zmm13, %%zmm1\n\t"
        "vdpbf16ps %%zmm12, %%zmm13, %%zmm2\n\t vdpbf16ps %%zmm12, %%zmm13, %%zmm3\n\t"
        "vdpbf16ps %%zmm12, %%zmm13, %%zmm4\n\t vdpbf16ps %%zmm12, %%zmm13, %%zmm5\n\t"
        "vdpbf16ps %%zmm12, %%zmm13, %%zmm6\n\t vdpbf16ps %%zmm12, %%zmm13, %%zmm7\n\t"
        "vdpbf16ps %%zmm12, %%zmm13, %%zmm8\n\t vdpbf16ps %%zmm12, %%zmm13, %%zmm9\n\t"
        "vdpbf16ps %%zmm12, %%zmm13, %%zmm10\n\t vdpbf16ps %%zmm12, %%zmm13, %%zmm11\n\t"
        "dec %0\n\t"
        "jnz 1b\n\t"
        "vzeroupper\n\t"
        : "+r"(iterations)
        :
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
          "xmm12", "xmm13", "cc");
}

int moe_peak_cpu_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    return CPU_COUNT(&set);
}

enum { MAX_THREADS = 256 };

typedef struct {
    void (*stream)(long);
    long iterations;
    int cpu;                    // CPU id to pin to
    pthread_barrier_t *barrier;
    int pinned;                 // out: 1 when sched_setaffinity succeeded
    struct timespec end;        // out
} job_t;

static struct timespec start_time;

static void *run_job(void *p) {
    job_t *j = p;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(j->cpu, &set);
    j->pinned = pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
    j->stream(1000);  // wake the core's vector units before the clock starts
    if (pthread_barrier_wait(j->barrier) == PTHREAD_BARRIER_SERIAL_THREAD) clock_gettime(CLOCK_MONOTONIC, &start_time);
    pthread_barrier_wait(j->barrier);
    j->stream(j->iterations);
    clock_gettime(CLOCK_MONOTONIC, &j->end);
    return NULL;
}

static double run(void (*stream)(long), double flopsPerTrip, int threads, long iterations) {
    if (threads < 1 || threads > MAX_THREADS || iterations < 1) return -2;
    cpu_set_t mask;
    if (sched_getaffinity(0, sizeof mask, &mask) != 0) return -2;
    if (threads > CPU_COUNT(&mask)) return -2;
    int cpus[MAX_THREADS], n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < threads; c++) if (CPU_ISSET(c, &mask)) cpus[n++] = c;
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, (unsigned)threads);
    job_t jobs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    int created = 0, ok = 1;
    for (int i = 0; i < threads; i++) {
        jobs[i] = (job_t){ .stream = stream, .iterations = iterations, .cpu = cpus[i], .barrier = &barrier };
        if (pthread_create(&tids[i], NULL, run_job, &jobs[i]) != 0) { ok = 0; break; }
        created++;
    }
    if (!ok) {
        // The barrier can never complete: the created threads are stuck in it; report failure without joining.
        return -2;
    }
    double last = 0;
    for (int i = 0; i < created; i++) {
        pthread_join(tids[i], NULL);
        if (!jobs[i].pinned) ok = 0;
        double t = (double)(jobs[i].end.tv_sec - start_time.tv_sec) + 1e-9 * (double)(jobs[i].end.tv_nsec - start_time.tv_nsec);
        if (t > last) last = t;
    }
    pthread_barrier_destroy(&barrier);
    if (!ok || last <= 0) return -2;
    return flopsPerTrip * (double)iterations * threads / last / 1e9;
}

double moe_peak_fp32_gflops(int threads, long iterations) {
    if (!(moe_peak_features() & 1)) return -1;
    return run(fma_stream, 24.0 * 16 * 2, threads, iterations);
}

double moe_peak_bf16_gflops(int threads, long iterations) {
    if ((moe_peak_features() & 3) != 3) return -1;
    return run(dpbf16_stream, 24.0 * 16 * 4, threads, iterations);
}
