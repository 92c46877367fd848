import ArgumentParser
import Foundation
import Harness

struct Moebench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "moebench",
        abstract: "Benchmark, profile and serve DiT-MoE and dense DiT models; compare diffusion samplers.",
        version: MoebenchVersion.description,
        subcommands: [Suite.self, Forward.self, TrainCommand.self, CurvesCommand.self, ReportCommand.self, CompareCommand.self, WorkerCommand.self, ClusterCommand.self])
}

// Mistakes in the command line print the usage (ArgumentParser); failures while running print one line on stderr
// and exit with status 1.
do {
    var command = try Moebench.parseAsRoot()
    try command.run()
} catch let error as RuntimeError {
    FileHandle.standardError.write(Data("moebench: error: \(error.description)\n".utf8))
    exit(1)
} catch {
    Moebench.exit(withError: error)
}
