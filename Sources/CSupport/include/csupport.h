#ifndef MOEBENCH_CSUPPORT_H
#define MOEBENCH_CSUPPORT_H
#include <stddef.h>
#include <stdint.h>

/* CPU the calling thread runs on now (sched_getcpu), or -1. */
int moe_current_cpu(void);
/* NUMA node of the page holding addr (get_mempolicy MPOL_F_NODE|MPOL_F_ADDR), or -1. */
int moe_page_node(const void *addr);
/* Node named by the memory policy of the mapping holding addr (get_mempolicy MPOL_F_ADDR) when that policy is
   MPOL_BIND or MPOL_PREFERRED to exactly one node; -1 for the default/local policy, several nodes or an error. */
int moe_policy_node(const void *addr);
/* Number of CPUs in the calling thread's affinity mask, or -1. */
int moe_affinity_count(void);
/* glibc malloc of this process: at most `arenas` arenas (M_ARENA_MAX), and every block of at least
   `mmap_threshold` bytes mapped on its own and unmapped when freed (M_MMAP_THRESHOLD, which also turns off glibc's
   dynamic raising of that threshold). Returns 1 when both were accepted. */
int moe_tune_malloc(int arenas, size_t mmap_threshold);
/* glibc malloc_trim(0): every whole free page inside every arena (not only at the top of each heap) is given back
   to the kernel. Returns 1 when memory was released. */
int moe_trim_malloc(void);

/* CRC32C (Castagnoli, reflected 0x82F63B78, init and final xor 0xFFFFFFFF) of n bytes at data, continuing from
   crc (the CRC of the bytes before; 0 to start). Uses the fastest of the paths below that the CPU has. */
uint32_t moe_crc32c(uint32_t crc, const void *data, size_t n);
/* The same CRC by the portable table-driven code (slicing-by-8), whatever the CPU. */
uint32_t moe_crc32c_sw(uint32_t crc, const void *data, size_t n);
/* The same CRC by the SSE4.2 CRC32 instruction on three streams (moe_crc32c_sw where the CPU lacks SSE4.2). */
uint32_t moe_crc32c_sse42(uint32_t crc, const void *data, size_t n);
/* The path moe_crc32c uses: 2 = AVX-512 VPCLMULQDQ folding, 1 = SSE4.2 CRC32 instruction, 0 = moe_crc32c_sw. */
int moe_crc32c_hardware(void);

#endif
