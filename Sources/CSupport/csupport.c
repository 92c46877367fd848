#define _GNU_SOURCE
#include <sched.h>
#include <numaif.h>
#include "csupport.h"

int moe_current_cpu(void) { return sched_getcpu(); }

int moe_page_node(const void *addr) {
    int node = -1;
    if (get_mempolicy(&node, NULL, 0, (void *)addr, MPOL_F_NODE | MPOL_F_ADDR) != 0) return -1;
    return node;
}

int moe_affinity_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
    return CPU_COUNT(&set);
}
