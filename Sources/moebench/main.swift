import ArgumentParser
import Foundation
import Harness

struct Moebench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "moebench",
        abstract: "Benchmark, profile and serve DiT-MoE and dense DiT models; compare diffusion samplers.",
        version: MoebenchVersion.description,
        subcommands: [Suite.self, Forward.self, TrainCommand.self, CurvesCommand.self, FIDCommand.self, ReportCommand.self, CompareCommand.self, WorkerCommand.self, ClusterCommand.self])
}

// Mistakes in the command line (parsing, and ValidationError from a command) print the usage (ArgumentParser);
// every other failure while running prints one line on stderr and exits with status 1.
var command: ParsableCommand
do {
    command = try Moebench.parseAsRoot()
} catch {
    Moebench.exit(withError: error)
}
do {
    try command.run()
} catch {
    // Help, --version, ValidationError and ExitCode keep ArgumentParser's handling (their exit codes are not 1).
    if Moebench.exitCode(for: error) != .failure { Moebench.exit(withError: error) }
    FileHandle.standardError.write(Data("moebench: error: \("\(error)".replacingOccurrences(of: "\n", with: " "))\n".utf8))
    exit(1)
}
