#define _GNU_SOURCE
#include <sched.h>
#include <malloc.h>
#include <numaif.h>
#include "csupport.h"

int moe_current_cpu(void) { return sched_getcpu(); }

int moe_page_node(const void *addr) {
    int node = -1;
    if (get_mempolicy(&node, NULL, 0, (void *)addr, MPOL_F_NODE | MPOL_F_ADDR) != 0) return -1;
    return node;
}

int moe_policy_node(const void *addr) {
    int mode = -1;
    unsigned long mask[16] = {0};   /* 1024 nodes */
    if (get_mempolicy(&mode, mask, sizeof(mask) * 8, (void *)addr, MPOL_F_ADDR) != 0) return -1;
    if (mode != MPOL_BIND && mode != MPOL_PREFERRED) return -1;
    int node = -1;
    for (int i = 0; i < (int)(sizeof(mask) * 8); i++) {
        if (mask[i / (8 * sizeof(unsigned long))] & (1UL << (i % (8 * sizeof(unsigned long))))) {
            if (node >= 0) return -1;
            node = i;
        }
    }
    return node;
}

int moe_affinity_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
    return CPU_COUNT(&set);
}

int moe_tune_malloc(int arenas, size_t mmap_threshold) {
    return mallopt(M_ARENA_MAX, arenas) == 1 && mallopt(M_MMAP_THRESHOLD, (int)mmap_threshold) == 1;
}

int moe_trim_malloc(void) {
    return malloc_trim(0);
}
