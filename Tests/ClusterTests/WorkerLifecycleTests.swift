import Foundation
import Wire
import XCTest
@testable import Cluster

/// Stopping a worker, its traffic counters and its accept loop under persistent failure.
final class WorkerLifecycleTests: XCTestCase {
    func authenticated(_ w: ExpertWorker) throws -> WireConnection {
        let c = try WireConnection.connect(host: "127.0.0.1", port: w.port)
        _ = try Handshake.client(c, secret: testSecret, fingerprint: w.fingerprint, peerName: "t")
        return c
    }

    /// `stop()` only sets a flag; each connection thread sees it within `stopPollInterval`, tells its peer
    /// (ERROR shuttingDown) and closes its own socket — also a peer that connected but never said HELLO.
    func testStopEndsIdleAndHandshakingConnectionsPromptly() throws {
        let cluster = try TestCluster([("w0", [0, 1])])
        let w = cluster.workers[0]
        let idle = try authenticated(w)
        let silent = try WireConnection.connect(host: "127.0.0.1", port: w.port)
        Thread.sleep(forTimeInterval: 0.1)   // both connections have their threads
        let t0 = Date()
        w.stop()
        XCTAssertTrue(w.waitForConnections(timeout: 2), "connection threads and the accept loop ended")
        XCTAssertLessThan(Date().timeIntervalSince(t0), 1.0)
        for c in [idle, silent] {
            let f = try c.receive(timeout: 2)
            XCTAssertEqual(try f.decode(ErrorMessage.self).code, WireErrorCode.shuttingDown.rawValue)
            XCTAssertThrowsError(try c.receive(timeout: 2)) { XCTAssertEqual($0 as? WireError, .closed) }
        }
        XCTAssertThrowsError(try WireConnection.connect(host: "127.0.0.1", port: w.port, timeout: 1),
                             "the listener is closed")
    }

    /// STATS byte counts are the worker's own per-connection snapshots: they include connections that have
    /// closed, never go down, and equal what the clients counted on their side.
    func testStatsBytesCoverClosedConnectionsAndNeverDecrease() throws {
        let cluster = try TestCluster([("w0", [0, 1])])
        let w = cluster.workers[0]
        final class Watch: @unchecked Sendable { var decreased = false; var samples = 0; var stop = false }
        let watch = Watch()
        let watcher = Thread {
            var lastIn: UInt64 = 0, lastOut: UInt64 = 0
            while !watch.stop {
                let s = w.statsReply()
                if s.bytesIn < lastIn || s.bytesOut < lastOut { watch.decreased = true }
                lastIn = s.bytesIn; lastOut = s.bytesOut
                watch.samples += 1
            }
        }
        watcher.start()
        var sent: UInt64 = 0, received: UInt64 = 0
        for round in 0..<6 {
            let c = try authenticated(w)
            for i in 0..<5 {
                try c.send(Ping(data: [UInt8](repeating: UInt8(i), count: 100 * (round + 1))), requestID: UInt64(i))
                _ = try c.receive(timeout: 5).decode(Pong.self)
            }
            sent += c.bytesSent; received += c.bytesReceived
            c.close()
        }
        // Wait until the worker's threads have seen every hang-up.
        let end = Date().addingTimeInterval(5)
        while w.statsReply().connections > 0 && Date() < end { Thread.sleep(forTimeInterval: 0.01) }
        watch.stop = true
        while !watcher.isFinished { Thread.sleep(forTimeInterval: 0.01) }
        let s = w.statsReply()
        XCTAssertEqual(s.connections, 0)
        XCTAssertEqual(s.bytesIn, sent, "bytes the clients sent, closed connections included")
        XCTAssertEqual(s.bytesOut, received)
        XCTAssertFalse(watch.decreased, "STATS byte counts went down")
        XCTAssertGreaterThan(watch.samples, 10)
    }

    /// A listener that fails every accept (here: shut down under the worker, which makes accept return EINVAL at
    /// once, like EMFILE does) is logged once and retried with back-off, not spun on silently.
    func testPersistentAcceptFailureIsLoggedOnceAndBackedOff() throws {
        final class Log: @unchecked Sendable {
            let lock = NSLock(); var lines: [String] = []
            func add(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
            var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
        }
        let log = Log()
        let w = try ExpertWorker.start(config: tinyConfig, source: tinySource, experts: [0],
                                       options: WorkerOptions(name: "w0", port: 0, secret: testSecret, log: { log.add($0) }))
        w.serveInBackground()
        XCTAssertEqual(shutdown(w.listener.fd, Int32(SHUT_RDWR)), 0)
        Thread.sleep(forTimeInterval: 1.0)
        let lines = log.all
        XCTAssertEqual(lines.count, 1, "\(lines)")
        XCTAssertTrue(lines.first?.contains("worker w0: cannot accept connections") ?? false, "\(lines)")
        XCTAssertTrue(lines.first?.contains("accept:") ?? false, "names the failing call: \(lines)")
        // Back-off 0.05, 0.1, 0.2, 0.4 s: about 5 attempts in a second (the old loop made thousands).
        XCTAssertGreaterThanOrEqual(w.acceptFailures, 3)
        XCTAssertLessThanOrEqual(w.acceptFailures, 8)
        let t0 = Date()
        w.stop()
        XCTAssertTrue(w.waitForConnections(timeout: 2))
        XCTAssertLessThan(Date().timeIntervalSince(t0), 0.5, "stop interrupts the back-off sleep")
    }

    func testAcceptBackoffDoublesToItsCapAndReportsEachErrorOnce() {
        var b = AcceptBackoff()
        let emfile = WireError.io("accept", errno: EMFILE), enfile = WireError.io("accept", errno: ENFILE)
        XCTAssertEqual(b.failed(emfile), "\(emfile)")
        XCTAssertEqual(b.delay, AcceptBackoff.initial)
        XCTAssertNil(b.failed(emfile))
        XCTAssertEqual(b.delay, 2 * AcceptBackoff.initial)
        XCTAssertEqual(b.failed(enfile), "\(enfile)")
        for _ in 0..<20 { XCTAssertNil(b.failed(emfile)) }
        XCTAssertEqual(b.delay, AcceptBackoff.maximum)
        b.succeeded()
        XCTAssertEqual(b.delay, 0)
        XCTAssertNil(b.failed(emfile), "an error already reported stays quiet after a recovery")
        XCTAssertEqual(b.delay, AcceptBackoff.initial)
    }
}
