// The per-connection scratch of a worker (WorkerSession: the frame buffers, decoded activations, gates, outputs, the
// experts' hidden activations and the codec's buffers), kept for the next connection instead of mapped and unmapped with every
// connection, and glibc's free memory given back when connections close.
//
// Why: these buffers are 64 KiB and larger, so (ExpertWorker.configureProcess) each is a mapping of its own whose
// touched pages count in RSS while the connection lives. Under connection churn the worker's RSS then follows how
// many connections happen to be open when it is sampled, and freed small blocks stay in glibc's arenas wherever
// they fell. Pooled sessions keep their pages for the next connection (RSS stays at the high-water mark of
// `capacity` sessions), and `trimIfDue` calls malloc_trim(0) after a connection closes, at most once per
// `trimInterval`, so the arenas hold only what is in use. A session that grew beyond `maxRows` rows gives that
// memory back before it is pooled, and so does one whose frame buffers grew beyond `maxFrameBytes` (each part on
// its own): a pooled session costs at most its fixed scratch, `maxRows` rows and `maxFrameBytes`.
import CSupport
import Foundation
import Wire

final class WorkerSessionPool: @unchecked Sendable {
    /// Idle sessions kept at most (more open connections than this allocate and free their own).
    let capacity: Int
    /// Rows of activations a pooled session may keep (its `ensure(rows:)` capacity).
    let maxRows: Int
    /// Frame-buffer bytes (send + receive capacity) a pooled session may keep.
    let maxFrameBytes: Int
    /// Seconds between two malloc_trim calls at least.
    let trimInterval: Double
    private let lock = NSLock()
    // Guarded by `lock`:
    private var idle: [WorkerSession] = []
    private var lastTrim: UInt64 = 0
    private(set) var trims = 0

    init(capacity: Int, maxRows: Int, maxFrameBytes: Int, trimInterval: Double) {
        self.capacity = capacity; self.maxRows = maxRows; self.maxFrameBytes = maxFrameBytes; self.trimInterval = trimInterval
    }

    var idleCount: Int { lock.lock(); defer { lock.unlock() }; return idle.count }

    /// A pooled session, or a new one from `make`.
    func take(_ make: () -> WorkerSession) -> WorkerSession {
        lock.lock()
        let s = idle.popLast()
        lock.unlock()
        return s ?? make()
    }

    /// Keeps `session` for the next connection unless `capacity` are idle already (then it is freed).
    func give(_ session: WorkerSession) {
        // Only what grew beyond its limit is freed: the rest keeps its touched pages, so a pooled session's
        // footprint does not drop and come back when one request was unusually large.
        if session.capacityRows > maxRows { session.releaseRows() }
        if session.frameBufferBytes > maxFrameBytes { session.releaseFrameBuffers() }
        lock.lock()
        if idle.count < capacity { idle.append(session) }
        lock.unlock()
    }

    /// malloc_trim(0) unless one ran less than `trimInterval` ago; true when it ran.
    @discardableResult
    func trimIfDue() -> Bool {
        let now = monotonicNanos()
        lock.lock()
        let due = trims == 0 || now &- lastTrim >= UInt64(trimInterval * 1e9)
        if due { lastTrim = now; trims += 1 }
        lock.unlock()
        if due { _ = moe_trim_malloc() }
        return due
    }
}
