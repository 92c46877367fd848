// `moebench compare` output: markdown (one table per group), CSV (one line per cell) and JSON (the RunComparison).
import Foundation
import Metrics

extension RunComparison {
    static func number(_ v: Double) -> String {
        if !v.isFinite { return "—" }
        return abs(v) >= 100 ? String(format: "%.1f", v) : String(format: "%.3g", v)
    }

    static func interval(_ i: BootstrapInterval?) -> String {
        i.map { String(format: "%.3f–%.3f", $0.lower, $0.upper) } ?? "—"
    }

    static func verdictText(_ v: String) -> String { v == "regression" ? "**REGRESSION**" : v }

    /// Markdown: a header, one table per group of shared cells (rows fit 100 columns for the usual cell names), then
    /// the cells found in one run only and the busy-machine warnings.
    public func markdown() -> String {
        var out = ["# moebench compare", "",
                   "- A: \(a.directory) (\(a.profile), \(a.startedAt)\(a.gitCommit.map { ", git \($0.prefix(10))" } ?? ""))",
                   "- B: \(b.directory) (\(b.profile), \(b.startedAt)\(b.gitCommit.map { ", git \($0.prefix(10))" } ?? ""))",
                   String(format: "- thresholds: timing and load balance %.0f%%, sample quality (FD) %.0f%%; flagged when worse or better by more and the 95%% interval excludes 1",
                          100 * threshold, 100 * fdThreshold),
                   "- timing intervals cover the spread within each run only, not drift of the machine between runs", ""]
        let timing = cells.filter { $0.part == "cost" || $0.part == "cost ratio" }
        let quality = cells.filter { $0.part == "curves" }
        let balance = cells.filter { $0.part == "load balance" }
        if cells.isEmpty { out.append("No shared cells.") }
        if !timing.isEmpty {
            out += ["## Timing (lower is better)", "", "| cell | A | B | B/A | 95% interval | verdict |", "|---|--:|--:|--:|---|---|"]
            for c in timing {
                let unit = c.unit == "ms" ? " ms" : "×"
                out.append("| \(c.part == "cost" ? "" : "\(c.part): ")\(c.cell) | \(Self.number(c.a))\(unit) | \(Self.number(c.b))\(unit) | "
                           + String(format: "%.3f", c.ratio) + " | \(Self.interval(c.interval)) | \(Self.verdictText(c.verdict)) |")
            }
            out.append("")
        }
        if !quality.isEmpty {
            out += ["## Sample quality: FID-digits (trained models) or FD (testbed), lower is better", "",
                    "| cell | NFE A / B | A | B | B/A | 95% interval | via | verdict |", "|---|---|--:|--:|--:|---|---|---|"]
            for c in quality {
                let nfe = String(format: "%.3g / %.3g", c.aNFE ?? .nan, c.bNFE ?? .nan)
                out.append("| \(c.cell) | \(nfe) | \(Self.number(c.a)) | \(Self.number(c.b)) | " + String(format: "%.3f", c.ratio)
                           + " | \(Self.interval(c.interval)) | \(c.method ?? "—") | \(Self.verdictText(c.verdict)) |")
            }
            out += ["", "via: paired = bootstrap over the stored samples, the same indices in both runs; rows = from the two rows' own intervals (log scale, independent). docs/results.md says how."]
            let notes = quality.compactMap { c in c.note.map { "\(c.cell): \($0)" } }
            if !notes.isEmpty { out.append("Notes: " + notes.joined(separator: "; ")) }
            out.append("")
        }
        if !balance.isEmpty {
            out += ["## Load balance (one deterministic routing pass: no interval)", "", "| quantity | A | B | B/A | verdict |", "|---|--:|--:|--:|---|"]
            for c in balance {
                out.append("| \(c.cell)\(c.higherIsBetter == true ? " (higher is better)" : "") | \(Self.number(c.a)) | \(Self.number(c.b)) | "
                           + (c.ratio.isFinite ? String(format: "%.3f", c.ratio) : "—") + " | \(Self.verdictText(c.verdict)) |")
            }
            out.append("")
        }
        for (name, list) in [("A", onlyInA), ("B", onlyInB)] where !list.isEmpty {
            out.append("Only in \(name): " + list.joined(separator: "; "))
            out.append("")
        }
        for (name, r) in [("A", a), ("B", b)] where !r.busy.isEmpty {
            out.append("Run \(name) was measured on a busy machine — " + r.busy.joined(separator: " "))
            out.append("")
        }
        let judged = cells.filter { $0.verdict != "info" }
        out.append("\(regressions.count) regression(s) among \(judged.count) compared cell(s): "
                   + "\(regressions.filter { $0.part != "curves" && $0.part != "load balance" }.count) timing, "
                   + "\(regressions.filter { $0.part == "curves" }.count) sample quality, "
                   + "\(regressions.filter { $0.part == "load balance" }.count) load balance.")
        return out.joined(separator: "\n")
    }

    /// The columns of earlier versions first, `verdict` still last.
    static let csvHeader = ["part", "cell", "unit", "a", "b", "a_n", "b_n", "ratio_b_over_a", "ratio_low", "ratio_high",
                            "a_nfe", "b_nfe", "interval_method", "higher_is_better", "verdict"]

    public func csv() -> String {
        func o(_ v: Double?) -> CSVText.Field { v.map { $0.isFinite ? .number($0) : .empty } ?? .empty }
        let pad = Array(repeating: CSVText.Field.empty, count: Self.csvHeader.count - 2)
        return CSVText.document(
            header: Self.csvHeader,
            rows: cells.map { c in
                [.text(c.part), .text(c.cell), .text(c.unit), .number(c.a), .number(c.b), .number(Double(c.aCount)),
                 .number(Double(c.bCount)), o(c.ratio), o(c.interval?.lower), o(c.interval?.upper),
                 o(c.aNFE), o(c.bNFE), c.method.map { .text($0) } ?? .empty, .bool(c.higherIsBetter == true), .text(c.verdict)]
            } + onlyInA.map { [.text("only in A"), .text($0)] + pad }
              + onlyInB.map { [.text("only in B"), .text($0)] + pad })
    }

    /// JSON of the comparison. A ratio with A = 0 (MaxVio of a perfectly balanced run) is written as the string
    /// "inf" or "nan", since JSON has no such numbers; decode with `RunComparison.jsonDecoder`.
    public func json() throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try enc.encode(self), as: UTF8.self)
    }

    public static var jsonDecoder: JSONDecoder {
        let dec = JSONDecoder()
        dec.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return dec
    }
}
