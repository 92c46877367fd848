// What the suite ran on: CPU, cores, NUMA topology as libnuma sees it, OpenBLAS core and threads, git commit.
import CBLAS
import CNUMA
import Foundation

public struct MachineInfo: Codable, Equatable, Sendable {
    public struct NUMANode: Codable, Equatable, Sendable {
        public var id: Int
        public var cpus: [Int]
        /// libnuma's numa_node_size64 (bytes). Unreliable on some VMs (it under-reports); informational only.
        public var memoryBytes: Int64?
    }

    public var hostname: String
    /// `uname -srm`-like: system, release, machine.
    public var os: String
    /// "model name" of /proc/cpuinfo.
    public var cpuModel: String?
    public var logicalCores: Int
    public var activeCores: Int
    /// False when libnuma reports NUMA unavailable (numa_available() < 0); then `numaNodes` is empty.
    public var numaAvailable: Bool
    public var numaNodes: [NUMANode]
    /// openblas_get_corename(), e.g. "Cooperlake".
    public var openblasCore: String?
    /// openblas_get_num_threads() at collection time.
    public var openblasThreads: Int?
    /// `git rev-parse HEAD` in the working directory, and whether `git status --porcelain` listed changes.
    public var gitCommit: String?
    public var gitDirty: Bool?
    /// Environment variables that change performance (OPENBLAS_*, OMP_NUM_THREADS), when set.
    public var environment: [String: String]

    public init(hostname: String, os: String, cpuModel: String?, logicalCores: Int, activeCores: Int,
                numaAvailable: Bool, numaNodes: [NUMANode], openblasCore: String?, openblasThreads: Int?,
                gitCommit: String?, gitDirty: Bool?, environment: [String: String]) {
        self.hostname = hostname
        self.os = os
        self.cpuModel = cpuModel
        self.logicalCores = logicalCores
        self.activeCores = activeCores
        self.numaAvailable = numaAvailable
        self.numaNodes = numaNodes
        self.openblasCore = openblasCore
        self.openblasThreads = openblasThreads
        self.gitCommit = gitCommit
        self.gitDirty = gitDirty
        self.environment = environment
    }

    /// Collects the description of this machine. `gitDirectory`: where to ask git (default: the checkout the running
    /// binary was built in, so a run from any directory records the commit of the code that ran).
    public static func collect(gitDirectory: String? = MoebenchVersion.executableDirectory) -> MachineInfo {
        let info = ProcessInfo.processInfo
        var uts = utsname()
        uname(&uts)
        func field<T>(_ v: inout T) -> String {
            withUnsafePointer(to: &v) { $0.withMemoryRebound(to: CChar.self, capacity: MemoryLayout<T>.size) { String(cString: $0) } }
        }
        let os = "\(field(&uts.sysname)) \(field(&uts.release)) \(field(&uts.machine))"
        let env = info.environment.filter { $0.key.hasPrefix("OPENBLAS_") || $0.key == "OMP_NUM_THREADS" || $0.key == "GOTO_NUM_THREADS" }
        let commit = runGit(["rev-parse", "HEAD"], in: gitDirectory)
        let dirty = commit == nil ? nil : runGit(["status", "--porcelain", "--untracked-files=no"], in: gitDirectory).map { !$0.isEmpty }
        return MachineInfo(hostname: info.hostName, os: os, cpuModel: cpuModelName(), logicalCores: info.processorCount,
                           activeCores: info.activeProcessorCount, numaAvailable: numa_available() >= 0,
                           numaNodes: numaTopology(), openblasCore: openblas_get_corename().map { String(cString: $0) },
                           openblasThreads: Int(openblas_get_num_threads()), gitCommit: commit, gitDirty: dirty,
                           environment: env)
    }

    /// First "model name" line of /proc/cpuinfo (nil where absent, e.g. some ARM kernels).
    static func cpuModelName(cpuinfo: String? = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) -> String? {
        guard let cpuinfo else { return nil }
        for line in cpuinfo.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }

    static func numaTopology() -> [NUMANode] {
        guard numa_available() >= 0 else { return [] }
        let maxNode = Int(numa_max_node())
        let maxCPU = Int(numa_num_configured_cpus())
        guard let mask = numa_allocate_cpumask() else { return [] }
        defer { numa_bitmask_free(mask) }
        var nodes: [NUMANode] = []
        for node in 0...max(maxNode, 0) where numa_bitmask_isbitset(numa_all_nodes_ptr, UInt32(node)) != 0 {
            numa_bitmask_clearall(mask)
            var cpus: [Int] = []
            if numa_node_to_cpus(Int32(node), mask) == 0 {
                cpus = (0..<maxCPU).filter { numa_bitmask_isbitset(mask, UInt32($0)) != 0 }
            }
            let size = numa_node_size64(Int32(node), nil)
            nodes.append(NUMANode(id: node, cpus: cpus, memoryBytes: size >= 0 ? Int64(size) : nil))
        }
        return nodes
    }

    /// Output of a git command (trimmed), or nil when git is missing or fails (e.g. not a repository).
    static func runGit(_ args: [String], in directory: String?) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["git"] + args
        if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { return nil }
        return String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
