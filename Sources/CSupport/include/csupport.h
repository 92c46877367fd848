#ifndef MOEBENCH_CSUPPORT_H
#define MOEBENCH_CSUPPORT_H
#include <stddef.h>

/* CPU the calling thread runs on now (sched_getcpu), or -1. */
int moe_current_cpu(void);
/* NUMA node of the page holding addr (get_mempolicy MPOL_F_NODE|MPOL_F_ADDR), or -1. */
int moe_page_node(const void *addr);
/* Node named by the memory policy of the mapping holding addr (get_mempolicy MPOL_F_ADDR) when that policy is
   MPOL_BIND or MPOL_PREFERRED to exactly one node; -1 for the default/local policy, several nodes or an error. */
int moe_policy_node(const void *addr);
/* Number of CPUs in the calling thread's affinity mask, or -1. */
int moe_affinity_count(void);

#endif
