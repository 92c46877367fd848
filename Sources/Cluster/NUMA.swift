// Binding a worker's threads and memory to one NUMA node with libnuma, and checking that it worked.
//
// libnuma's policies are per thread and inherited by threads created afterwards: bind on the thread that will
// start the worker's serving threads, before it allocates the expert weights. Calls naming an absent node fail
// softly, only printing to stderr, so the node is checked first.

import CNUMA
import Foundation
import CSupport
import DiT
import Wire

public enum NUMAError: Error, Equatable, CustomStringConvertible {
    case unavailable
    case nodeAbsent(node: Int, present: [Int])
    case bindFailed(node: Int, what: String, errno: Int32)

    public var description: String {
        switch self {
        case .unavailable: return "libnuma reports that NUMA is not available on this machine (numa_available() < 0)"
        case let .nodeAbsent(n, p):
            return "NUMA node \(n) is not present on this machine (nodes with CPUs and memory: \(formatExpertList(p)); see `numactl --hardware`)"
        case let .bindFailed(n, w, e): return "binding to NUMA node \(n) failed in \(w): errno \(e)"
        }
    }
}

public enum NUMA {
    public static var isAvailable: Bool { numa_available() >= 0 }

    /// Nodes that have both CPUs and memory.
    public static func presentNodes() -> [Int] {
        guard isAvailable else { return [] }
        let maxNode = Int(numa_max_node())
        guard maxNode >= 0 else { return [] }
        return (0...maxNode).filter { node in
            guard numa_bitmask_isbitset(numa_all_nodes_ptr, UInt32(node)) != 0 else { return false }
            let cpus = numa_allocate_cpumask()!
            defer { numa_free_cpumask(cpus) }
            guard numa_node_to_cpus(Int32(node), cpus) == 0 else { return false }
            return numa_bitmask_weight(cpus) > 0
        }
    }

    /// Throws `nodeAbsent` unless `node` exists here with CPUs and memory.
    public static func checkNode(_ node: Int) throws {
        guard isAvailable else { throw NUMAError.unavailable }
        let present = presentNodes()
        guard present.contains(node) else { throw NUMAError.nodeAbsent(node: node, present: present) }
    }

    /// Runs the calling thread (and threads it creates later) on `node`'s CPUs and allocates its memory there:
    /// `strict` uses `numa_set_membind` (allocation fails rather than spill), otherwise `numa_set_preferred`.
    public static func bind(node: Int, strict: Bool = false) throws {
        try checkNode(node)
        guard numa_run_on_node(Int32(node)) == 0 else {
            throw NUMAError.bindFailed(node: node, what: "numa_run_on_node", errno: errno)
        }
        if strict {
            let mask = numa_allocate_nodemask()!
            defer { numa_free_nodemask(mask) }
            numa_bitmask_setbit(mask, UInt32(node))
            numa_set_membind(mask)
        } else {
            numa_set_preferred(Int32(node))
        }
    }

    /// Undoes `bind` for the calling thread: all CPUs, local allocation.
    public static func unbind() {
        guard isAvailable else { return }
        numa_run_on_node(-1)
        numa_set_localalloc()
    }

    /// Node of the CPU the calling thread is running on now, or −1.
    public static func currentNode() -> Int {
        let cpu = moe_current_cpu()
        guard cpu >= 0, isAvailable else { return -1 }
        return Int(numa_node_of_cpu(cpu))
    }

    /// Node of the page holding `address` (faulting it in if needed), or −1.
    public static func pageNode(_ address: UnsafeRawPointer) -> Int { Int(moe_page_node(address)) }

    /// Node named by the memory policy of the mapping holding `address` when it binds (or prefers) exactly one
    /// node, e.g. memory from `allocator(node:)`; −1 for the default policy (page cache, ordinary heap).
    public static func policyNode(_ address: UnsafeRawPointer) -> Int { Int(moe_policy_node(address)) }

    /// Weight memory on `node`: `numa_alloc_onnode` (an anonymous mapping bound to the node, so its pages land there
    /// when first touched, whichever thread touches them) and `numa_free`.
    public static func allocator(node: Int) -> WeightAllocator {
        WeightAllocator(allocate: { bytes in numa_alloc_onnode(max(bytes, 1), Int32(node)) },
                        deallocate: { p, bytes in numa_free(p, max(bytes, 1)) })
    }

    /// What a worker reports in WELCOME and STATS: the node of the CPU this thread runs on and of the given
    /// weight pages (the first page that disagrees, if any).
    public static func report(requestedNode: Int, weightPages: [UnsafeRawPointer]) -> NUMAReport {
        let cpuNode = currentNode()
        var pageNode = -1
        for p in weightPages {
            let n = NUMA.pageNode(p)
            if pageNode == -1 || n != requestedNode { pageNode = n }
            if n != requestedNode { break }
        }
        return NUMAReport(requestedNode: Int32(requestedNode), cpuNode: Int32(cpuNode), pageNode: Int32(pageNode),
                          verified: requestedNode >= 0 && cpuNode == requestedNode && pageNode == requestedNode)
    }
}
