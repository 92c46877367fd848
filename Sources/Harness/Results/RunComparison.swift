// `moebench compare RUN_A RUN_B`: the timing cells two results directories share, side by side. A cell is
// identified by (part, model, execution with codec, batch, scenario, precision) for cost cells and by (label,
// batch) for the cost part's paired MoE/dense ratios. Per shared cell: both medians, the ratio B/A and its 95%
// percentile-bootstrap interval (Bootstrap.ratioOfMedians over the stored raw latencies — the runs are independent,
// so each side is resampled on its own; for paired ratios the per-pair ratios are resampled), and a verdict:
//   regression   B/A > 1 + threshold and the interval lies above 1 (or there is no interval);
//   improvement  B/A < 1 / (1 + threshold) and the interval lies below 1 (or there is no interval);
//   unclear      beyond the threshold but the interval contains 1;
//   same         within the threshold.
// Higher is worse for every compared value (milliseconds, latency ratios).
import Foundation
import Metrics

public struct ComparedCell: Codable, Equatable, Sendable {
    public var part: String
    /// Human-readable identity, e.g. "moe in_process b1 single_stream fp32".
    public var cell: String
    public var key: String
    /// "ms" for latencies, "ratio" for paired MoE/dense ratios.
    public var unit: String
    public var a: Double
    public var b: Double
    public var aCount: Int
    public var bCount: Int
    public var ratio: Double
    public var interval: BootstrapInterval?
    public var verdict: String
}

public struct RunComparison: Codable, Sendable {
    public struct Run: Codable, Sendable {
        public var directory: String
        public var profile: String
        public var startedAt: String
        public var gitCommit: String?
        public var schema: String
        /// Parts during which the machine was busy (PartLoad), with the reasons.
        public var busy: [String]
    }

    public var a: Run
    public var b: Run
    public var threshold: Double
    public var cells: [ComparedCell]
    /// Identities of cells present in only one run.
    public var onlyInA: [String]
    public var onlyInB: [String]

    public var regressions: [ComparedCell] { cells.filter { $0.verdict == "regression" } }

    /// Cells regressing by more than `fraction` (B/A > 1 + fraction with the regression verdict).
    public func regressions(above fraction: Double) -> [ComparedCell] {
        regressions.filter { $0.ratio > 1 + fraction }
    }

    /// One comparable timing of a run: its identity, value, and raw samples for the interval.
    struct Entry {
        var part: String, cell: String, key: String, unit: String, value: Double, count: Int, samples: [Double]?
    }

    public static func load(_ dirA: URL, _ dirB: URL, threshold: Double) throws -> RunComparison {
        let docA = try ResultsStore.loadDocument(directory: dirA), docB = try ResultsStore.loadDocument(directory: dirB)
        return try compare(docA, directoryA: dirA.path, docB, directoryB: dirB.path, threshold: threshold)
    }

    public static func compare(_ docA: ResultsDocument, directoryA: String, _ docB: ResultsDocument, directoryB: String,
                               threshold: Double) throws -> RunComparison {
        let ea = try entries(docA, path: directoryA), eb = try entries(docB, path: directoryB)
        let keysB = Dictionary(eb.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        let keysA = Set(ea.map(\.key))
        var cells: [ComparedCell] = []
        for x in ea {
            guard let y = keysB[x.key] else { continue }
            let r: (ratio: Double, interval: BootstrapInterval?)
            if let sa = x.samples, let sb = y.samples, min(sa.count, sb.count) >= BootstrapPolicy.minimumCount {
                r = Bootstrap.ratioOfMedians(sb, over: sa)
            } else {
                r = (y.value / x.value, nil)
            }
            cells.append(ComparedCell(part: x.part, cell: x.cell, key: x.key, unit: x.unit, a: x.value, b: y.value, aCount: x.count,
                                      bCount: y.count, ratio: r.ratio, interval: r.interval,
                                      verdict: verdict(ratio: r.ratio, interval: r.interval, threshold: threshold)))
        }
        return RunComparison(a: run(docA, directoryA), b: run(docB, directoryB), threshold: threshold, cells: cells,
                             onlyInA: ea.filter { keysB[$0.key] == nil }.map { "\($0.part): \($0.cell)" },
                             onlyInB: eb.filter { !keysA.contains($0.key) }.map { "\($0.part): \($0.cell)" })
    }

    static func verdict(ratio: Double, interval: BootstrapInterval?, threshold: Double) -> String {
        if ratio > 1 + threshold { return interval.map { $0.lower > 1 } ?? true ? "regression" : "unclear" }
        if ratio < 1 / (1 + threshold) { return interval.map { $0.upper < 1 } ?? true ? "improvement" : "unclear" }
        return "same"
    }

    static func run(_ doc: ResultsDocument, _ dir: String) -> Run {
        Run(directory: dir, profile: doc.profile.name, startedAt: doc.startedAt, gitCommit: doc.machine.gitCommit, schema: doc.schema,
            busy: doc.parts.compactMap { p in p.machineLoad.flatMap { $0.busy ? "\(p.id): \($0.warnings.joined(separator: " "))" : nil } })
    }

    /// The comparable timings of a document: cost cells (schema 1: `data` is the array of cells; schema 2: an
    /// object with `cells` and `pairs`).
    static func entries(_ doc: ResultsDocument, path: String) throws -> [Entry] {
        guard let part = doc.parts.first(where: { $0.id == "cost" }), let data = part.data else { return [] }
        let file = URL(fileURLWithPath: path).appendingPathComponent("results.json").path
        var cells: [CostCell] = [], pairs: [PairedComparison] = []
        do {
            if case .array = data {
                cells = try data.decode([CostCell].self)
            } else {
                let d = try data.decode(CostData.self)
                cells = d.cells
                pairs = d.pairs
            }
        } catch {
            throw ResultsError.badDocument(path: file, reason: "the cost part's data cannot be read (\(error))")
        }
        var out: [Entry] = []
        for c in cells {
            let precision = c.precision ?? "fp32"
            let cell = "\(c.model) \(c.executionLabel) b\(c.batch) \(c.scenario) \(precision)"
            out.append(Entry(part: "cost", cell: cell, key: "cost|\(c.model)|\(c.executionLabel)|\(c.batch)|\(c.scenario)|\(precision)",
                             unit: "ms", value: c.latency.medianMs, count: c.latency.count, samples: c.latency.samplesMs))
        }
        for p in pairs {
            var ratios: [Double]?
            if let f = p.firstMs, let s = p.secondMs, f.count == s.count { ratios = zip(f, s).map { $0 / $1 } }
            out.append(Entry(part: "cost ratio", cell: "\(p.label) b\(p.batch)", key: "pair|\(p.label)|\(p.batch)|\(p.method)",
                             unit: "ratio", value: p.ratio, count: p.count, samples: ratios))
        }
        return out
    }
}

// MARK: Output

extension RunComparison {
    static func number(_ v: Double) -> String {
        if !v.isFinite { return "—" }
        let a = abs(v)
        return a >= 100 ? String(format: "%.1f", v) : a >= 1 ? String(format: "%.3g", v) : String(format: "%.3g", v)
    }

    static func interval(_ i: BootstrapInterval?) -> String {
        i.map { String(format: "%.3f–%.3f", $0.lower, $0.upper) } ?? "—"
    }

    /// Markdown: a header, one table row per shared cell (fits 100 columns for the usual cell names), then the cells
    /// found in one run only and the busy-machine warnings.
    public func markdown() -> String {
        var out = ["# moebench compare", "",
                   "- A: \(a.directory) (\(a.profile), \(a.startedAt)\(a.gitCommit.map { ", git \($0.prefix(10))" } ?? ""))",
                   "- B: \(b.directory) (\(b.profile), \(b.startedAt)\(b.gitCommit.map { ", git \($0.prefix(10))" } ?? ""))",
                   String(format: "- threshold %.0f%%: flagged when B/A leaves [%.3f, %.3f] and its 95%% interval excludes 1",
                          100 * threshold, 1 / (1 + threshold), 1 + threshold),
                   "- intervals cover the spread within each run only, not drift of the machine between runs", ""]
        if cells.isEmpty {
            out.append("No shared timing cells.")
        } else {
            out.append("| cell | A | B | B/A | 95% interval | verdict |")
            out.append("|---|--:|--:|--:|---|---|")
            for c in cells {
                let unit = c.unit == "ms" ? " ms" : "×"
                out.append("| \(c.part == "cost" ? "" : "\(c.part): ")\(c.cell) | \(Self.number(c.a))\(unit) | \(Self.number(c.b))\(unit) | "
                           + String(format: "%.3f", c.ratio) + " | \(Self.interval(c.interval)) | \(c.verdict == "regression" ? "**REGRESSION**" : c.verdict) |")
            }
        }
        for (name, list) in [("A", onlyInA), ("B", onlyInB)] where !list.isEmpty {
            out.append("")
            out.append("Only in \(name): " + list.joined(separator: "; "))
        }
        for (name, r) in [("A", a), ("B", b)] where !r.busy.isEmpty {
            out.append("")
            out.append("Run \(name) was measured on a busy machine — " + r.busy.joined(separator: " "))
        }
        out.append("")
        out.append("\(regressions.count) regression(s) among \(cells.count) shared cell(s).")
        return out.joined(separator: "\n")
    }

    public func csv() -> String {
        CSVText.document(
            header: ["part", "cell", "unit", "a", "b", "a_n", "b_n", "ratio_b_over_a", "ratio_low", "ratio_high", "verdict"],
            rows: cells.map { c in
                [.text(c.part), .text(c.cell), .text(c.unit), .number(c.a), .number(c.b), .number(Double(c.aCount)),
                 .number(Double(c.bCount)), .number(c.ratio), c.interval.map { .number($0.lower) } ?? .empty,
                 c.interval.map { .number($0.upper) } ?? .empty, .text(c.verdict)]
            } + onlyInA.map { [.text("only in A"), .text($0)] + Array(repeating: .empty, count: 9) }
              + onlyInB.map { [.text("only in B"), .text($0)] + Array(repeating: .empty, count: 9) })
    }

    public func json() throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try enc.encode(self), as: UTF8.self)
    }
}
