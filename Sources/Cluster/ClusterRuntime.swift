// Entry points for the CLI: the cluster executor for a forward, and starting, stopping and querying the local
// workers of a hosts file (`moebench cluster up|down|status`).

import DiT
import Foundation
import Wire

public enum ClusterRuntime {
    /// `.moebench-cluster/` next to the hosts file: generated secret, worker logs and pid files.
    public static func stateDirectory(forHosts hostsPath: String) -> String {
        let dir = URL(fileURLWithPath: hostsPath).deletingLastPathComponent()
        return dir.appendingPathComponent(".moebench-cluster").path
    }

    public static func defaultSecretPath(forHosts hostsPath: String) -> String {
        stateDirectory(forHosts: hostsPath) + "/secret"
    }

    /// The executor `moebench forward --hosts FILE` installs on its model: reads the hosts file and the secret
    /// (default: the one `cluster up` generated), connects to every worker and checks that they serve `weights`.
    public static func executor(hostsPath: String, secretPath: String? = nil, weights: DiTWeights,
                                codec: ShardOptions = .default, requestTimeout: Double = 30) throws -> ClusterExpertExecutor {
        let hosts = try HostsFile.load(path: hostsPath)
        let secret = try WireSecret(contentsOf: secretPath ?? defaultSecretPath(forHosts: hostsPath))
        return try ClusterExpertExecutor(hosts: hosts, expertCount: weights.config.numExperts,
                                         options: ClusterOptions(secret: secret,
                                                                 fingerprint: ModelFingerprint(serving: weights),
                                                                 codec: codec, requestTimeout: requestTimeout))
    }

    /// Reads the secret file, or creates one (32 random bytes, hex, mode 0600) when it does not exist yet.
    public static func loadOrCreateSecret(path: String) throws -> WireSecret {
        if !FileManager.default.fileExists(atPath: path) {
            try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path,
                                                    withIntermediateDirectories: true)
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            guard fd >= 0 else { throw ClusterError.badConfig("cannot create secret file '\(path)': errno \(errno)") }
            let hex = WireSecret.randomBytes(32).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() + "\n"
            let ok = hex.withCString { write(fd, $0, strlen($0)) } == hex.utf8.count
            close(fd)
            guard ok else { throw ClusterError.badConfig("cannot write secret file '\(path)'") }
        }
        var st = stat()
        if stat(path, &st) == 0 && (st.st_mode & 0o077) != 0 {
            FileHandle.standardError.write("warning: secret file '\(path)' is readable by others (chmod 600 it)\n".data(using: .utf8)!)
        }
        return try WireSecret(contentsOf: path)
    }

    /// Whether `address` names this machine (loopback, its host name, or one of its interface addresses).
    public static func isLocal(_ address: String) -> Bool {
        if address == "localhost" || address.hasPrefix("127.") || address == "::1" || address == "0.0.0.0" { return true }
        if address == ProcessInfo.processInfo.hostName { return true }
        var ifap: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&ifap) == 0, let first = ifap else { return false }
        defer { freeifaddrs(first) }
        var p: UnsafeMutablePointer<ifaddrs>? = first
        var buf = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        while let a = p {
            if let sa = a.pointee.ifa_addr, sa.pointee.sa_family == sa_family_t(AF_INET) || sa.pointee.sa_family == sa_family_t(AF_INET6) {
                let len = socklen_t(sa.pointee.sa_family == sa_family_t(AF_INET) ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
                if getnameinfo(sa, len, &buf, socklen_t(buf.count), nil, 0, NI_NUMERICHOST) == 0,
                   String(cString: buf).split(separator: "%").first.map(String.init) == address { return true }
            }
            p = a.pointee.ifa_next
        }
        return false
    }

    /// Connects and authenticates to one worker without a model check (for status and shutdown).
    public static func connect(_ entry: HostEntry, secret: WireSecret, timeout: Double = 3) throws -> (WireConnection, Welcome) {
        let c = try WireConnection.connect(host: entry.address, port: entry.port, timeout: timeout)
        let w = try Handshake.client(c, secret: secret, fingerprint: .none, peerName: "moebench cluster", timeout: timeout)
        return (c, w)
    }

    public static func stats(_ entry: HostEntry, secret: WireSecret, timeout: Double = 3) throws -> StatsReply {
        let (c, _) = try connect(entry, secret: secret, timeout: timeout)
        defer { c.close() }
        try c.send(StatsRequest(), timeout: timeout)
        return try c.receive(timeout: timeout).decode(StatsReply.self)
    }

    /// Asks a worker to exit; true when it acknowledged.
    public static func shutdown(_ entry: HostEntry, secret: WireSecret, timeout: Double = 3) throws {
        let (c, _) = try connect(entry, secret: secret, timeout: timeout)
        defer { c.close() }
        try c.send(Shutdown(), timeout: timeout)
        _ = try c.receive(timeout: timeout).decode(Shutdown.self)
    }
}

/// Starts worker processes of this machine and remembers them in pid files.
public struct LocalLauncher {
    public var hostsPath: String
    public var executable: String
    public var stateDirectory: String

    public init(hostsPath: String, executable: String) {
        self.hostsPath = hostsPath
        self.executable = executable
        stateDirectory = ClusterRuntime.stateDirectory(forHosts: hostsPath)
    }

    public func pidFile(_ e: HostEntry) -> String { "\(stateDirectory)/\(e.name).pid" }
    public func logFile(_ e: HostEntry) -> String { "\(stateDirectory)/\(e.name).log" }

    public func recordedPID(_ e: HostEntry) -> Int32? {
        guard let s = try? String(contentsOfFile: pidFile(e), encoding: .utf8) else { return nil }
        return Int32(s.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    public static func isRunning(_ pid: Int32) -> Bool { kill(pid, 0) == 0 }

    /// Spawns `executable worker …` for `entry` with output to its log file; returns the pid.
    public func launch(_ entry: HostEntry, workerArguments: [String]) throws -> Int32 {
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: logFile(entry), contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile(entry)))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = ["worker"] + workerArguments
        p.standardOutput = log
        p.standardError = log
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let pid = p.processIdentifier
        try "\(pid)\n".write(toFile: pidFile(entry), atomically: true, encoding: .utf8)
        return pid
    }
}
