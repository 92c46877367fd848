import ArgumentParser
import Foundation
import Harness

struct Moebench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "moebench",
        abstract: "Benchmark, profile and serve DiT-MoE and dense DiT models; compare diffusion samplers.",
        version: MoebenchVersion.description,
        subcommands: [Suite.self, Forward.self, TrainCommand.self, CurvesCommand.self, ReportCommand.self, WorkerCommand.self, ClusterCommand.self])
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
} catch let error as ValidationError {
    Moebench.exit(withError: error)
} catch let error as ExitCode {
    Moebench.exit(withError: error)
} catch let error as CleanExit {
    Moebench.exit(withError: error)
} catch {
    let text = "\(error)"
    FileHandle.standardError.write(Data("moebench: error: \(text.replacingOccurrences(of: "\n", with: " "))\n".utf8))
    exit(1)
}
