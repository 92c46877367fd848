import XCTest
import Wire
@testable import Cluster

final class NUMATests: XCTestCase {
    override func tearDown() { NUMA.unbind() }

    func testBindToNodeZeroAndVerifyThreadAndPages() throws {
        try XCTSkipUnless(NUMA.isAvailable, "libnuma reports NUMA unavailable on this machine")
        XCTAssertTrue(NUMA.presentNodes().contains(0))
        try NUMA.bind(node: 0)
        XCTAssertEqual(NUMA.currentNode(), 0)
        // Pages allocated and touched after binding live on node 0.
        let n = 1 << 20
        let p = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { p.deallocate() }
        p.initialize(repeating: 1, count: n)
        let report = NUMA.report(requestedNode: 0, weightPages: [UnsafeRawPointer(p), UnsafeRawPointer(p + n - 1)])
        XCTAssertEqual(report, NUMAReport(requestedNode: 0, cpuNode: 0, pageNode: 0, verified: true))
        // A thread started after binding inherits it.
        final class Box: @unchecked Sendable { var node = -2 }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread { box.node = NUMA.currentNode(); done.signal() }
        done.wait()
        XCTAssertEqual(box.node, 0)
    }

    func testStrictBindWorks() throws {
        try XCTSkipUnless(NUMA.isAvailable, "libnuma reports NUMA unavailable on this machine")
        try NUMA.bind(node: 0, strict: true)
        XCTAssertEqual(NUMA.currentNode(), 0)
    }

    func testAbsentNodeIsAClearError() {
        let absent = (NUMA.presentNodes().max() ?? 0) + 7
        XCTAssertThrowsError(try NUMA.bind(node: absent)) { e in
            if NUMA.isAvailable {
                XCTAssertEqual(e as? NUMAError, .nodeAbsent(node: absent, present: NUMA.presentNodes()))
                XCTAssertTrue("\(e)".contains("NUMA node \(absent) is not present on this machine"), "\(e)")
            } else {
                XCTAssertEqual(e as? NUMAError, .unavailable)
            }
        }
    }
}
