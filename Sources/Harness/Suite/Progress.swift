import Foundation

/// Progress on stderr for long steps: one line per event, with elapsed time, so a user sees where a suite is and
/// logs stay readable when stderr is not a terminal.
public final class Progress: @unchecked Sendable {
    private let start = Date()
    private let enabled: Bool
    private let lock = NSLock()

    public init(enabled: Bool = true) { self.enabled = enabled }

    public func say(_ text: String) {
        guard enabled else { return }
        let t = Date().timeIntervalSince(start)
        let line = String(format: "[%6.1fs] ", t) + text + "\n"
        lock.lock(); FileHandle.standardError.write(Data(line.utf8)); lock.unlock()
    }
}
