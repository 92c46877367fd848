import DiT
import Foundation
import Tensor
import Wire
import XCTest
@testable import Cluster

/// Two "hosts" on one machine: network namespaces A (coordinator) and B (worker) joined by a veth pair, created by
/// the test (as root) and deleted afterwards. Traffic stays inside them: the worker's address is not even routable
/// from the test's own namespace, which the test checks. Skips, saying why, where namespaces cannot be made.
final class NetnsTests: XCTestCase {
    typealias SetNS = @convention(c) (Int32, Int32) -> Int32
    static let cloneNewNet: Int32 = 0x4000_0000

    @discardableResult
    func ip(_ args: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) }!)
        p.arguments = args
        let pipe = Pipe()
        p.standardError = pipe
        p.standardOutput = pipe
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }

    /// Runs `body` on a fresh thread that has joined network namespace `name`; sockets it creates live there.
    func inNamespace<T>(_ name: String, _ body: @escaping () throws -> T) throws -> T {
        guard let sym = dlsym(nil, "setns") else { throw XCTSkip("setns is not available") }
        let setns = unsafeBitCast(sym, to: SetNS.self)
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            defer { done.signal() }
            let fd = open("/var/run/netns/\(name)", O_RDONLY)
            guard fd >= 0, setns(fd, Self.cloneNewNet) == 0 else {
                box.result = .failure(ClusterError.badConfig("cannot enter network namespace \(name): errno \(errno)"))
                return
            }
            close(fd)
            box.result = Result { try body() }
        }
        done.wait()
        return try box.result!.get()
    }

    func testTwoHostsOverVethNetworkNamespaces() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root to create network namespaces (ip netns + veth)") }
        guard ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"].contains(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("the `ip` tool (iproute2) is not installed")
        }
        let tag = String(getpid() % 100_000)
        let nsA = "moebench-a-\(tag)", nsB = "moebench-b-\(tag)", vA = "mba\(tag)", vB = "mbb\(tag)"
        let addrA = "10.231.\(getpid() % 200).1", addrB = "10.231.\(getpid() % 200).2"
        defer { _ = try? ip(["netns", "del", nsA]); _ = try? ip(["netns", "del", nsB]) }
        for cmd in [["netns", "add", nsA], ["netns", "add", nsB],
                    ["link", "add", vA, "type", "veth", "peer", "name", vB],
                    ["link", "set", vA, "netns", nsA], ["link", "set", vB, "netns", nsB],
                    ["-n", nsA, "addr", "add", "\(addrA)/24", "dev", vA], ["-n", nsB, "addr", "add", "\(addrB)/24", "dev", vB],
                    ["-n", nsA, "link", "set", vA, "up"], ["-n", nsB, "link", "set", vB, "up"],
                    ["-n", nsA, "link", "set", "lo", "up"], ["-n", nsB, "link", "set", "lo", "up"]] {
            let (status, out) = try ip(cmd)
            if status != 0 {
                throw XCTSkip("cannot build the namespaces here (`ip \(cmd.joined(separator: " "))`: \(out.trimmingCharacters(in: .whitespacesAndNewlines)))")
            }
        }
        // Worker in B, listening on B's veth address.
        let worker = try inNamespace(nsB) { () throws -> ExpertWorker in
            let w = try ExpertWorker.start(config: tinyConfig, source: tinySource, experts: Array(0..<8),
                                           options: WorkerOptions(name: "remote", host: addrB, port: 0, secret: testSecret))
            w.serveInBackground()
            return w
        }
        defer { worker.stop(); worker.waitForConnections() }
        let hosts = HostsFile(path: "netns-hosts", entries: [HostEntry(name: "remote", address: addrB, port: worker.port,
                                                                       numaNode: 0, experts: Array(0..<8), line: 1)])
        // From the test's own namespace the worker is unreachable: traffic can only go through the veth.
        XCTAssertThrowsError(try WireConnection.connect(host: addrB, port: worker.port, timeout: 0.5))

        let local = try DiTModel(config: tinyConfig, source: tinySource)
        let input = TinyInput(batch: 2)
        let want = try input.run(local)
        let remote = try DiTModel(config: tinyConfig, source: tinySource)
        let fp = ModelFingerprint(hashing: remote.weights.fingerprint)
        // The coordinator's sockets are created in A (connect happens in the initializer).
        let exec = try inNamespace(nsA) {
            try ClusterExpertExecutor(hosts: hosts, expertCount: 8, options: ClusterOptions(secret: testSecret, fingerprint: fp))
        }
        remote.executor = exec
        let got = try input.run(remote)
        XCTAssertTrue(maxRelativeViolation(want, got).ok, "distributed over veth differs from local")
        XCTAssertGreaterThan(exec.timing.bytesSent, 0)
        exec.close()
    }
}

final class ResultBox<T>: @unchecked Sendable { var result: Result<T, Error>? }
