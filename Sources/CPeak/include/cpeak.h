#ifndef MOEBENCH_CPEAK_H
#define MOEBENCH_CPEAK_H

/* Physical compute peak of this CPU, measured with register-only instruction streams (no memory traffic).

   moe_peak_features: bit 0 = AVX-512F usable (CPUID leaf 7 EBX bit 16 and the OS saves ZMM/opmask state,
   XCR0 bits 1,2,5,6,7), bit 1 = AVX512_BF16 usable (additionally CPUID leaf 7 subleaf 1 EAX bit 5).

   moe_peak_fp32_gflops: `threads` threads, each pinned to a different CPU of the process's affinity mask, each
   running `iterations` loop trips of 24 vfmadd231ps zmm on 12 independent accumulators (2 FLOP × 16 lanes each).
   moe_peak_bf16_gflops: the same with vdpbf16ps zmm (16 lanes, each 2 bf16 products summed into an f32 lane:
   4 FLOP per lane, 64 per instruction).
   Both return GFLOP/s over the wall time from the common start (a barrier) to the last thread's end, or a negative
   value: -1 when the CPU/OS lacks the instructions, -2 when `threads` exceeds the CPUs in the affinity mask or a
   thread cannot be created or pinned. */
int moe_peak_features(void);
double moe_peak_fp32_gflops(int threads, long iterations);
double moe_peak_bf16_gflops(int threads, long iterations);
/* CPUs in the calling thread's affinity mask. */
int moe_peak_cpu_count(void);

#endif
