import Foundation
import Wire
import XCTest
@testable import Cluster

/// Connection sessions are kept for the next connection (frame buffers included), at most `capacity` of them, and
/// a session that grew beyond the pool's limits gives that memory back first.
final class WorkerSessionPoolTests: XCTestCase {
    /// Waits until the worker has no connection thread left (the pool gets a session back when its thread ends).
    func waitIdle(_ w: ExpertWorker, sessions: Int) {
        let end = Date().addingTimeInterval(5)
        while w.sessions.idleCount < sessions && Date() < end { Thread.sleep(forTimeInterval: 0.01) }
    }

    func testSuccessiveConnectionsReuseOneSessionAndItsFrameBuffers() throws {
        let cluster = try TestCluster([("w0", [0, 1])])
        defer { cluster.stopAll() }
        let w = cluster.workers[0]
        XCTAssertEqual(w.sessions.idleCount, 0)
        let first = try authenticatedClient(w)
        try first.send(Ping(data: [UInt8](repeating: 7, count: 200_000)), requestID: 1)
        XCTAssertEqual(try first.receive(timeout: 5).decode(Pong.self).data.count, 200_000)
        first.close()
        waitIdle(w, sessions: 1)
        XCTAssertEqual(w.sessions.idleCount, 1)
        XCTAssertGreaterThan(w.sessions.trims, 0, "malloc_trim runs after a connection closes")
        let pooled = w.sessions.take { XCTFail("the pool is empty"); return WorkerSession(worker: w) }
        // The 200 kB ping grew the buffers the session lent to the connection; the session got them back.
        XCTAssertGreaterThanOrEqual(pooled.receiveBuffer.capacity, 200_000)
        let buffer = ObjectIdentifier(pooled.receiveBuffer)
        w.sessions.give(pooled)
        let second = try authenticatedClient(w)
        try second.send(Ping(data: [1, 2, 3]), requestID: 2)
        XCTAssertEqual(try second.receive(timeout: 5).decode(Pong.self).data, [1, 2, 3])
        second.close()
        waitIdle(w, sessions: 1)
        XCTAssertEqual(w.sessions.idleCount, 1, "the second connection used the pooled session: no second one")
        let again = w.sessions.take { WorkerSession(worker: w) }
        XCTAssertEqual(ObjectIdentifier(again.receiveBuffer), buffer)
    }

    func testPoolKeepsAtMostCapacityAndShrinksOversizedSessions() throws {
        let cluster = try TestCluster([("w0", [0])])
        defer { cluster.stopAll() }
        let w = cluster.workers[0]
        let pool = WorkerSessionPool(capacity: 2, maxRows: 8, maxFrameBytes: 1 << 20, trimInterval: 3600)
        let sessions = (0..<3).map { _ in WorkerSession(worker: w) }
        sessions[0].ensure(rows: 100)                         // beyond maxRows
        sessions[1].receiveBuffer.ensureCapacity(4 << 20)     // beyond maxFrameBytes
        sessions[0].receiveBuffer.ensureCapacity(256 << 10)   // within maxFrameBytes: kept
        let keptBuffer = ObjectIdentifier(sessions[0].receiveBuffer)
        sessions[1].ensure(rows: 4)                           // within maxRows: kept
        for s in sessions { pool.give(s) }
        XCTAssertEqual(pool.idleCount, 2)
        XCTAssertEqual(sessions[0].capacityRows, 0)
        XCTAssertEqual(ObjectIdentifier(sessions[0].receiveBuffer), keptBuffer, "only the oversized part is freed")
        XCTAssertLessThanOrEqual(sessions[1].frameBufferBytes, 1 << 20)
        XCTAssertEqual(sessions[1].capacityRows, 4)
        XCTAssertTrue(pool.trimIfDue())
        XCTAssertFalse(pool.trimIfDue(), "at most one malloc_trim per trimInterval")
    }
}
