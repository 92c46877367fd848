import ArgumentParser
import Cluster
import Foundation
import Harness
import Tensor

struct Suite: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a benchmark suite from a profile and write results, figures and an HTML report.",
        discussion: """
        PROFILE is a TOML file (schema: profiles/README.md). Without it the embedded default runs \
        (profiles/default.toml) on the digits models moebench trained and ships: dense versus MoE cost in-process \
        and on the local cluster of `hosts`, expert load balance with routing verdicts and the balance-loss \
        ablations, and NFE–FID-digits curves of DLG against the six integrators on the MoE served by the cluster \
        and on its dense twin, with the exact-score testbed as a second panel — about 5 minutes on 2 cores.

        Output: <results>/<yyyyMMdd-HHmmss>-<profile>/ with results.json (schema: docs/results.md), one CSV per \
        table, SVG figures and index.html (self-contained: opens offline in any browser). Each part is written as \
        soon as it finishes, so an interrupted suite keeps what it finished; `moebench report DIR` re-renders \
        index.html. Progress goes to stderr, the summary to stdout (--format text|md|csv|json; json is the results \
        document, as --json). Exit status 1 when a part failed.

        The cost part divides its rates by the physical compute peak of this CPU, measured once at the start of the \
        run and recorded in results.json; --peak GFLOPS or --peak-from RUN_DIR reuse a known value instead (e.g. one \
        measured on an idle machine).

        Ctrl-C (or SIGTERM) stops cleanly: finished parts and cells stay \
        on disk, results.json says "interrupted", the workers the suite \
        started are stopped, and `moebench suite [PROFILE] --resume DIR` \
        continues where it stopped. A second Ctrl-C exits at once.

        Relative paths inside a profile (hosts, configs, weights) are \
        resolved from the profile's own directory (the embedded default's \
        from the checkout's profiles/), and checked before anything runs.
        """)

    @Argument(help: "Profile TOML file (default: the embedded default profile).")
    var profile: String?

    @Option(help: "Directory under which the results directory is created.")
    var results: String = "results"

    @Option(help: ArgumentHelp("Continue an interrupted or failed run in this results directory (same profile): finished parts are kept, the curves part skips finished cells, the rest reruns.", valueName: "dir"))
    var resume: String?

    @Flag(help: "Print the summary as JSON (the finished results.json document) instead of tables (= --format json).")
    var json = false

    @Option(help: "Summary format on stdout: text (aligned, default), md (markdown), csv (part,table,row,column,unit,value) or json.")
    var format: OutputFormat = .text

    @Option(help: "Roofline of the cost part in GFLOP/s (skips measuring the physical peak).")
    var peak: Double?

    @Option(help: "Reuse the roofline recorded in this earlier results directory.")
    var peakFrom: String?

    @Flag(help: "No progress lines on stderr.")
    var quiet = false

    @Option(help: "GEMM backend: onednn (default when oneDNN has a CPU engine) or openblas.")
    var gemm: String = GEMMBackend.current.rawValue

    @Option(help: "Arithmetic of the large GEMMs: fp32 or bf16 (needs --gemm onednn); the suite's cluster workers get the same.")
    var precision: String = "fp32"

    func validate() throws {
        if peak != nil && peakFrom != nil { throw ValidationError("give --peak or --peak-from, not both") }
        if let g = peak, !(g > 0 && g.isFinite) { throw ValidationError("--peak must be a positive GFLOP/s value, got \(g)") }
    }

    func run() throws {
        let p: Profile
        do {
            p = try profile.map { try Profile.load(path: $0) } ?? Profile.embeddedDefault()
        } catch let e as ProfileError {
            throw RuntimeError(e.description)
        }
        // Until the results directory exists, Ctrl-C or SIGTERM only stop the workers this suite started; then the
        // runner marks the run interrupted (SuiteInterruption).
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
        runner.resumeDirectory = resume.map { URL(fileURLWithPath: $0) }
        runner.handleSignals = true
        runner.resumeHint = "resume with: moebench suite \(profile.map { "'\($0)' " } ?? "")--resume "
        if let g = peak {
            runner.rooflineOverride = .given(gflops: g, precision: compute.rawValue,
                                             threads: p.run.threads ?? ProcessInfo.processInfo.activeProcessorCount)
        } else if let dir = peakFrom {
            do { runner.rooflineOverride = try RooflineRecord.reused(from: URL(fileURLWithPath: dir)) } catch let e as ResultsError {
                throw RuntimeError("--peak-from: \(e.description)")
            }
        }
        runner.workerArguments = ["--gemm", GEMMBackend.current.rawValue, "--precision", compute.rawValue]
        let dir = try runner.run()
        let doc = try ResultsStore.loadDocument(directory: dir)
        let chosen: SummaryTable.Format = json ? .json : SummaryTable.Format(rawValue: format.rawValue) ?? .text
        print(try SummaryTable.render(doc, format: chosen))
        if chosen == .text || chosen == .md { print("report: \(dir.appendingPathComponent("index.html").path)") }
        if doc.status != .complete { throw ExitCode(1) }
    }
}
