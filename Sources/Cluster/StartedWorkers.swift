import Foundation

/// Worker processes this process started (`LocalCluster.up`), so that an interrupted run (SIGINT, SIGTERM) or a
/// failed start does not leave them running. Storage is a fixed array so the signal handler only reads memory
/// and calls kill/_exit, both async-signal-safe.
public enum StartedWorkers {
    static let capacity = 1024
    nonisolated(unsafe) static let pids: UnsafeMutablePointer<Int32> = {
        let p = UnsafeMutablePointer<Int32>.allocate(capacity: capacity)
        p.initialize(repeating: 0, count: capacity)
        return p
    }()

    static func add(_ pid: Int32) {
        for i in 0..<capacity where pids[i] == 0 { pids[i] = pid; return }
    }

    static func remove(_ pid: Int32) {
        for i in 0..<capacity where pids[i] == pid { pids[i] = 0 }
    }

    /// Sends SIGTERM to every worker still recorded.
    public static func stopAll() {
        for i in 0..<capacity where pids[i] > 0 { kill(pids[i], SIGTERM); pids[i] = 0 }
    }

    /// On SIGINT or SIGTERM: stop the started workers, then exit with 128 + the signal number.
    public static func installSignalHandlers() {
        let handler: @convention(c) (Int32) -> Void = { sig in
            for i in 0..<StartedWorkers.capacity where StartedWorkers.pids[i] > 0 { kill(StartedWorkers.pids[i], SIGTERM) }
            _exit(128 + sig)
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
    }
}
