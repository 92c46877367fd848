import ArgumentParser
import Cluster
import Foundation
import Harness
import Tensor

struct Suite: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a benchmark suite from a profile and write results, figures and an HTML report.",
        discussion: """
        PROFILE is a TOML file (schema: profiles/README.md). Without it the
        embedded default runs (identical to profiles/default.toml): dense
        versus MoE cost in-process and on the local cluster of `hosts`,
        expert load balance over a short sampling run, and an NFE–FD sweep
        of the samplers on the exact-score testbed — about 5 minutes on 2
        cores.

        Output: <results>/<yyyyMMdd-HHmmss>-<profile>/ with results.json
        (schema: docs/results.md), one CSV per table, SVG figures and
        index.html (self-contained: opens offline in any browser). Each part
        is written as soon as it finishes, so an interrupted suite keeps what
        it finished; `moebench report DIR` re-renders index.html. Progress
        goes to stderr, the summary table to stdout (--json: the results
        document instead). Exit status 1 when a part failed.

        Relative paths inside a profile (hosts, configs, weights) are
        resolved from the current directory.
        """)

    @Argument(help: "Profile TOML file (default: the embedded default profile).")
    var profile: String?

    @Option(help: "Directory under which the results directory is created.")
    var results: String = "results"

    @Flag(help: "Print the summary as JSON (the finished results.json document) instead of tables.")
    var json = false

    @Flag(help: "No progress lines on stderr.")
    var quiet = false

    @Option(help: "GEMM backend: onednn (default when oneDNN has a CPU engine) or openblas.")
    var gemm: String = GEMMBackend.current.rawValue

    @Option(help: "Arithmetic of the large GEMMs: fp32 or bf16 (needs --gemm onednn); the suite's cluster workers get the same.")
    var precision: String = "fp32"

    func run() throws {
        let p: Profile
        do {
            p = try profile.map { try Profile.load(path: $0) } ?? Profile.embeddedDefault()
        } catch let e as ProfileError {
            throw RuntimeError(e.description)
        }
        // Ctrl-C or SIGTERM: stop the workers this suite starts before exiting; finished parts are already on disk.
        StartedWorkers.installSignalHandlers()
        let compute: ComputePrecision
        do {
            GEMMBackend.current = try GEMMBackend.parse(gemm)
            compute = try ComputePrecision.parse(precision)
        } catch let e as BackendError { throw ValidationError(e.description) }
        let progress = Progress(enabled: !quiet)
        progress.say("GEMM: \(GEMMBackend.current.rawValue), \(compute.rawValue)")
        let runner = SuiteRunner(profile: p, resultsRoot: URL(fileURLWithPath: results), progress: progress)
        runner.precision = compute
        let workerArguments = ["--gemm", GEMMBackend.current.rawValue, "--precision", compute.rawValue]
        runner.openCluster = { settings, config, source in
            try LocalClusterSession(settings: settings, config: config, source: source, progress: progress,
                                    precision: compute, workerArguments: workerArguments)
        }
        let dir = try runner.run()
        let doc = try ResultsStore.loadDocument(directory: dir)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys, .prettyPrinted]
            print(String(decoding: try enc.encode(doc), as: UTF8.self))
        } else {
            print(SummaryTable.render(doc))
            print("report: \(dir.appendingPathComponent("index.html").path)")
        }
        if doc.status != "complete" { throw ExitCode(1) }
    }
}
