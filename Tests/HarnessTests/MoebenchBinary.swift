import Foundation

/// The `moebench` executable that `swift test` builds next to the test bundle (the products directory is the bundle
/// itself on Linux and the bundle's parent on macOS), run as a child process. Its absence is a test failure, not a
/// skip: a fresh clone's `swift test` builds it.
struct MoebenchBinary {
    let url: URL

    struct Missing: Error, CustomStringConvertible { let description: String }

    /// Throws `Missing` (the calling test fails with the paths looked at) when the binary is not there.
    init() throws {
        let bundle = Bundle(for: CompareTests.self).bundleURL
        let candidates = [bundle, bundle.deletingLastPathComponent()].map { $0.appendingPathComponent("moebench") }
        guard let exe = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw Missing(description: "moebench is not built at \(candidates.map(\.path)); `swift test` builds it with the tests")
        }
        url = exe
    }

    /// Runs `moebench args…` to completion: exit status, stdout, stderr.
    func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = url
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}
