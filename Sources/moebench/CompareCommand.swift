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
        abstract: "Compare the timing cells of two results directories: medians, ratio B/A with a 95% interval, regressions.",
        discussion: """
            RUN_A and RUN_B are directories written by `moebench suite`. A cell is shared when both runs have it with
            the same part, model, execution (and codec), batch, scenario and precision; the cost part's paired MoE/dense
            ratios are compared too. Per shared cell: both medians, B/A (ratio of medians) and its 95% percentile
            bootstrap interval from the stored raw latencies (each run resampled on its own; no interval below 5
            queries), and a verdict: regression when B/A > 1 + threshold and the interval lies above 1, improvement
            when B/A < 1/(1 + threshold) and the interval lies below 1, unclear when beyond the threshold but the
            interval contains 1, same otherwise. Cells present in only one run are listed. Higher is worse for every
            compared value. Runs measured on a busy machine are named. See docs/results.md.

            Exit status: 0; 2 when --fail-above is given and some cell regressed by more than it; 1 on errors
            (missing directory, missing or unreadable results.json).

            EXAMPLES
              moebench compare results/20260101-120000-default results/20260102-120000-default
              moebench compare A B --threshold 0.10 --fail-above 0.10 --format csv > diff.csv
            """)

    @Argument(help: "The baseline results directory (A).")
    var runA: String

    @Argument(help: "The results directory compared with it (B).")
    var runB: String

    @Option(help: "Relative change flagged as a regression or improvement (0.05 = 5%).")
    var threshold: Double = 0.05

    @Option(help: "Exit with status 2 when any cell regressed by more than this fraction (e.g. 0.10).")
    var failAbove: Double?

    @Option(help: "Output: md (markdown, default), csv or json.")
    var format: OutputFormat = .md

    func validate() throws {
        guard threshold >= 0, threshold.isFinite else { throw ValidationError("--threshold must be ≥ 0, got \(threshold)") }
        if let f = failAbove, !(f >= 0 && f.isFinite) { throw ValidationError("--fail-above must be ≥ 0, got \(f)") }
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
            comparison = try RunComparison.load(dirs[0], dirs[1], threshold: threshold)
        } catch let e as ResultsError {
            throw RuntimeError(e.description)
        }
        switch format {
        case .md, .text: print(comparison.markdown())
        case .csv: print(comparison.csv(), terminator: "")
        case .json: print(try comparison.json())
        }
        if let limit = failAbove {
            let bad = comparison.regressions(above: limit)
            if !bad.isEmpty {
                FileHandle.standardError.write(Data(String(format: "moebench: %d cell(s) regressed by more than %.0f%%: %@\n", bad.count,
                                                           100 * limit, bad.map(\.cell).joined(separator: "; ")).utf8))
                throw ExitCode(2)
            }
        }
    }
}
