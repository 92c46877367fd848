import XCTest
@testable import Cluster

final class HostsFileTests: XCTestCase {
    func testParsesWorkersCommentsAndReplicas() throws {
        let text = """
        # comment line
        w0 127.0.0.1 7101 0 0-3   # trailing comment

        w1\t10.0.0.2\t7102\t1\t4-7,0
        """
        let h = try HostsFile.parse(text, path: "hosts")
        XCTAssertEqual(h.entries, [
            HostEntry(name: "w0", address: "127.0.0.1", port: 7101, numaNode: 0, experts: [0, 1, 2, 3], line: 2),
            HostEntry(name: "w1", address: "10.0.0.2", port: 7102, numaNode: 1, experts: [0, 4, 5, 6, 7], line: 4),
        ])
        XCTAssertEqual(h.owners(of: 0), [0, 1])
        XCTAssertEqual(h.owners(of: 5), [1])
        XCTAssertNoThrow(try h.validate(expertCount: 8))
    }

    func testTheRepositoryHostsFileServesEightExperts() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../hosts")
        let h = try HostsFile.load(path: url.path)
        XCTAssertEqual(h.entries.count, 2)
        try h.validate(expertCount: 8)
    }

    func assertError(_ text: String, line: Int?, contains: String, file: StaticString = #filePath, l: UInt = #line) {
        XCTAssertThrowsError(try HostsFile.parse(text, path: "my-hosts"), file: file, line: l) { e in
            guard let h = e as? HostsFileError else { return XCTFail("\(e)", file: file, line: l) }
            XCTAssertEqual(h.line, line, "\(h)", file: file, line: l)
            XCTAssertTrue(h.description.contains(contains), "\(h)", file: file, line: l)
            if let line { XCTAssertTrue(h.description.hasPrefix("my-hosts:\(line):"), "\(h)", file: file, line: l) }
        }
    }

    func testErrorsNameTheLine() {
        let ok = "w0 127.0.0.1 7101 0 0-3\n"
        assertError(ok + "w1 127.0.0.1 7102 0\n", line: 2, contains: "expected 5 fields")
        assertError(ok + "w1 127.0.0.1 http 0 4\n", line: 2, contains: "port 'http'")
        assertError(ok + "w1 127.0.0.1 70000 0 4\n", line: 2, contains: "port '70000'")
        assertError(ok + "w1 127.0.0.1 7102 -1 4\n", line: 2, contains: "NUMA node '-1'")
        assertError(ok + "w1 127.0.0.1 7102 0 4-x\n", line: 2, contains: "experts '4-x'")
        assertError(ok + "w1 127.0.0.1 7102 0 7-4\n", line: 2, contains: "runs backwards")
        assertError(ok + "w1 127.0.0.1 7102 0 4,,5\n", line: 2, contains: "experts")
        assertError(ok + "# c\nw0 127.0.0.1 7102 0 4\n", line: 3, contains: "duplicate worker name 'w0' (first on line 1)")
        assertError(ok + "w1 127.0.0.1 7101 0 4\n", line: 2, contains: "duplicate address 127.0.0.1:7101")
        assertError(ok + "w/1 127.0.0.1 7102 0 4\n", line: 2, contains: "worker name")
        assertError("# only comments\n", line: nil, contains: "no workers")
    }

    func testValidationAgainstTheModel() throws {
        let h = try HostsFile.parse("w0 127.0.0.1 7101 0 0-2\nw1 127.0.0.1 7102 0 5,9\n", path: "hosts")
        XCTAssertThrowsError(try h.validate(expertCount: 8)) { e in
            XCTAssertEqual(e as? HostsFileError, HostsFileError(path: "hosts", line: 2,
                message: "worker w1 lists expert 9, but the model has 8 experts (0...7)"))
        }
        XCTAssertThrowsError(try h.validate(expertCount: 10)) { e in
            XCTAssertEqual((e as? HostsFileError)?.message, "experts nobody hosts: 3-4,6-8 (model has 10 experts)")
        }
    }

    func testExpertListHelpers() throws {
        XCTAssertEqual(try parseExpertList("0-3,6"), [0, 1, 2, 3, 6])
        XCTAssertEqual(try parseExpertList("3,1,1-2"), [1, 2, 3])
        XCTAssertEqual(formatExpertList([0, 1, 2, 3, 6, 8, 9]), "0-3,6,8-9")
        XCTAssertThrowsError(try parseExpertList(""))
        XCTAssertThrowsError(try parseExpertList("-1"))
    }

    /// A file saved with CRLF line endings parses like the LF one (a CRLF is a single Character in Swift).
    func testCRLFLineEndings() throws {
        let lf = "# name address port numa experts\nw0 127.0.0.1 7101 0 0-3\n\nw1 127.0.0.1 7102 0 4-7  # c\n"
        let crlf = lf.replacingOccurrences(of: "\n", with: "\r\n")
        XCTAssertEqual(crlf.utf8.filter { $0 == 13 }.count, 4)
        let h = try HostsFile.parse(crlf, path: "hosts")
        XCTAssertEqual(h.entries, try HostsFile.parse(lf, path: "hosts").entries)
        XCTAssertEqual(h.entries.map(\.line), [2, 4])
        XCTAssertEqual(h.entries[1].experts, [4, 5, 6, 7])
        assertError("w0 127.0.0.1 7101 0 0-3\r\nw1 127.0.0.1 7102 0\r\n", line: 2, contains: "found 4")
    }

    /// The same port spelled `127.0.0.1` and `localhost` is one listening endpoint: only one worker could bind it
    /// and it would answer the other's readiness check. The error names both lines.
    func testTwoSpellingsOfOneEndpointAreRejected() throws {
        assertError("w0 127.0.0.1 7101 0 0-3\nw1 localhost 7101 0 4-7\n", line: 2,
                    contains: "same listening endpoint as 127.0.0.1:7101 on line 1")
        assertError("w0 localhost 7101 0 0-3\n# x\nw1 127.0.0.1 7101 0 4-7\n", line: 3, contains: "lines 1 and 3")
        assertError("w0 0.0.0.0 7101 0 0-3\nw1 127.0.0.1 7101 0 4-7\n", line: 2, contains: "wildcard")
        // Different ports on one address, and one port on different addresses, are fine.
        XCTAssertNoThrow(try HostsFile.parse("w0 127.0.0.1 7101 0 0-3\nw1 localhost 7102 0 4-7\n"))
        XCTAssertNoThrow(try HostsFile.parse("w0 127.0.0.1 7101 0 0-3\nw1 127.0.0.2 7101 0 4-7\n"))
        // A name resolved by the given resolver (two names of one host elsewhere).
        let resolver: (String) -> [String]? = { ["a.example": ["10.1.0.5"], "b.example": ["10.1.0.5"]][$0] }
        XCTAssertThrowsError(try HostsFile.parse("w0 a.example 7101 0 0-3\nw1 b.example 7101 0 4-7\n", path: "h",
                                                 resolve: resolver)) { e in
            XCTAssertEqual((e as? HostsFileError)?.line, 2)
            XCTAssertTrue("\(e)".contains("both resolve to 10.1.0.5"), "\(e)")
        }
    }
}
