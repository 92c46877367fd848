import ArgumentParser

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "moebench-bench",
        abstract: "moebench's benchmarks; each prints a baseline measured in the same run.",
        subcommands: [PeakBench.self, EngineBench.self, ThreadingBench.self, SamplerOverhead.self, CodecBench.self,
                      WireRoundTripBench.self, ClusterForwardBench.self, TrainBench.self, SoakBench.self, VAEBench.self])
}

Bench.main()
