import ArgumentParser

struct Moebench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "moebench",
        abstract: "Benchmark, profile and serve DiT-MoE and dense DiT models; compare diffusion samplers.",
        subcommands: [Suite.self, Forward.self, TrainCommand.self, CurvesCommand.self, ReportCommand.self, WorkerCommand.self, ClusterCommand.self])
}

Moebench.main()
