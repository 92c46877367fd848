import ArgumentParser
import Foundation
import Harness

/// Output formats of `compare`, `suite` and `report` summaries.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, md, csv, json
}

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Compare two results directories: timing, sample quality (FD) and load balance, B/A with 95% intervals, regressions.",
        discussion: """
            RUN_A and RUN_B are directories written by `moebench suite`. Three groups of cells are compared when both \
            runs have them:

            Timing: the cost part's cells (same model, execution and codec, batch, scenario and precision) and its \
            paired MoE/dense ratios. Both medians, B/A (ratio of medians) and its 95% percentile bootstrap interval \
            from the stored raw latencies (each run resampled on its own; no interval below 5 queries).

            Sample quality: every curves cell (model or testbed, integrator, mode, budget, seed; same sample count and \
            DLG settings) and the finite-sample reference rows. FID-digits for trained models, FD for the testbed; \
            both values, both mean NFE, B/A and its 95% interval: a paired bootstrap over the cell's stored samples \
            (the same indices from both runs, FD against the same reference) when both runs stored them and the \
            shipped FID-digits instruments reproduce both values, otherwise from the two rows' own intervals.

            Load balance: overall expert, worker and NUMA balancedness (higher is better) and MaxVio (shown only), \
            from one deterministic routing pass, so without interval.

            Verdict per cell: regression when worse by more than the group's threshold (B/A > 1 + t; A/B for \
            balancedness) and the interval excludes 1 (or there is none), improvement likewise the other way, unclear \
            when beyond the threshold but the interval contains 1, same otherwise. Cells present in only one run are \
            listed; runs measured on a busy machine are named. See docs/results.md.

            Exit status: 0; 2 when --fail-above is given and a timing or load-balance cell regressed by more than it, \
            or --fail-above-fd is given and a sample-quality cell did; 1 on errors (missing directory, missing or \
            unreadable results.json or curves files).

            EXAMPLES
              moebench compare results/RUN_A results/RUN_B
              moebench compare A B --fail-above 0.10 --format csv > diff.csv
              moebench compare A B --fail-above 0.10 --fail-above-fd 0.25
            """)

    @Argument(help: "The baseline results directory (A).")
    var runA: String

    @Argument(help: "The results directory compared with it (B).")
    var runB: String

    @Option(help: "Relative change of timing and load-balance cells flagged as a regression or improvement (0.05 = 5%).")
    var threshold: Double = 0.05

    @Option(help: "Relative change of sample-quality (FD, FID-digits) cells flagged as a regression or improvement.")
    var fdThreshold: Double = RunComparison.defaultFDThreshold

    @Option(help: "Exit with status 2 when a timing or load-balance cell regressed by more than this fraction (e.g. 0.10).")
    var failAbove: Double?

    @Option(help: "Exit with status 2 when a sample-quality cell regressed by more than this fraction (e.g. 0.25).")
    var failAboveFd: Double?

    @Option(help: "Output: md (markdown, default), csv or json.")
    var format: OutputFormat = .md

    func validate() throws {
        guard threshold >= 0, threshold.isFinite else { throw ValidationError("--threshold must be ≥ 0, got \(threshold)") }
        guard fdThreshold >= 0, fdThreshold.isFinite else { throw ValidationError("--fd-threshold must be ≥ 0, got \(fdThreshold)") }
        if let f = failAbove, !(f >= 0 && f.isFinite) { throw ValidationError("--fail-above must be ≥ 0, got \(f)") }
        if let f = failAboveFd, !(f >= 0 && f.isFinite) { throw ValidationError("--fail-above-fd must be ≥ 0, got \(f)") }
        if format == .text { throw ValidationError("--format for compare: md, csv or json") }
    }

    func run() throws {
        let dirs = try [runA, runB].map { path -> URL in
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw RuntimeError("\(path): no such results directory") }
            guard isDir.boolValue else { throw RuntimeError("\(path): not a directory (expected a results directory holding results.json)") }
            return URL(fileURLWithPath: path)
        }
        let comparison: RunComparison
        do {
            comparison = try RunComparison.load(dirs[0], dirs[1], threshold: threshold, fdThreshold: fdThreshold)
        } catch let e as ResultsError {
            throw RuntimeError(e.description)
        }
        switch format {
        case .md, .text: print(comparison.markdown())
        case .csv: print(comparison.csv(), terminator: "")
        case .json: print(try comparison.json())
        }
        var failed = false
        for (limit, group, what) in [(failAbove, "cost", "timing or load-balance"), (failAboveFd, "curves", "sample-quality")] {
            guard let limit else { continue }
            let bad = comparison.regressions(above: limit, group: group)
            if !bad.isEmpty {
                FileHandle.standardError.write(Data(String(format: "moebench: %d %@ cell(s) regressed by more than %.0f%%: %@\n", bad.count,
                                                           what, 100 * limit, bad.map(\.cell).joined(separator: "; ")).utf8))
                failed = true
            }
        }
        if failed { throw ExitCode(2) }
    }
}
