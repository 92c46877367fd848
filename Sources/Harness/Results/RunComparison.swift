// `moebench compare RUN_A RUN_B`: the cells two results directories share, side by side, in three groups:
//   cost          timing cells, identified by (part, model, execution with codec, batch, scenario, precision), and
//                 the cost part's paired MoE/dense ratios, identified by (label, batch, method); milliseconds or
//                 latency ratios, lower is better; the interval is Bootstrap.ratioOfMedians over the stored raw
//                 latencies (the runs are independent, so each side is resampled on its own; for paired ratios the
//                 per-pair ratios are resampled);
//   curves        sample-quality cells (CurvesComparison.swift), FID-digits or FD, lower is better;
//   load balance  the load-balance part's overall balancedness (higher is better) and MaxVio (shown, not judged:
//                 per layer it is 1/balancedness − 1) — one deterministic routing pass, so no interval.
// Per shared cell: both values, the ratio B/A with its 95% interval where there is one, and a verdict; with
// "worse" meaning higher for lower-is-better cells and lower for balancedness, and t the group's threshold:
//   regression   worse by more than the threshold (B/A > 1 + t, or A/B > 1 + t) and the interval excludes 1
//                (or there is no interval);
//   improvement  better by more than the threshold, the interval excluding 1 (or none);
//   unclear      beyond the threshold but the interval contains 1 (or is unbounded);
//   same         within the threshold.
import Foundation
import Metrics

public struct ComparedCell: Codable, Equatable, Sendable {
    /// "cost", "cost ratio", "curves" or "load balance".
    public var part: String
    /// Human-readable identity, e.g. "moe in_process b1 single_stream fp32".
    public var cell: String
    public var key: String
    /// "ms" for latencies, "ratio" for paired MoE/dense ratios, "FID-digits" or "FD" for curves cells,
    /// "balancedness" or "MaxVio" for load balance.
    public var unit: String
    public var a: Double
    public var b: Double
    /// Queries (cost), samples per cell (curves), 0 (load balance).
    public var aCount: Int
    public var bCount: Int
    public var ratio: Double
    public var interval: BootstrapInterval?
    public var verdict: String
    /// True for quantities where higher is better (balancedness); absent = lower is better.
    public var higherIsBetter: Bool?
    /// Curves cells: the mean counted NFE per sample in each run.
    public var aNFE: Double?
    public var bNFE: Double?
    /// How the interval was obtained when it is not the cost part's bootstrap (curves: "paired" or "rows").
    public var method: String?
    /// Why there is no interval or what to watch out for (e.g. "A's interval reaches 0: B/A unbounded above").
    public var note: String?

    public init(part: String, cell: String, key: String, unit: String, a: Double, b: Double, aCount: Int, bCount: Int,
                ratio: Double, interval: BootstrapInterval?, verdict: String, higherIsBetter: Bool? = nil,
                aNFE: Double? = nil, bNFE: Double? = nil, method: String? = nil, note: String? = nil) {
        self.part = part; self.cell = cell; self.key = key; self.unit = unit; self.a = a; self.b = b
        self.aCount = aCount; self.bCount = bCount; self.ratio = ratio; self.interval = interval; self.verdict = verdict
        self.higherIsBetter = higherIsBetter; self.aNFE = aNFE; self.bNFE = bNFE; self.method = method; self.note = note
    }

    /// The group whose threshold and --fail-above option apply: "curves" for sample quality, "cost" otherwise
    /// (timing cells, ratios and load balance).
    public var group: String { part == "curves" ? "curves" : "cost" }

    /// How much worse B is than A as a factor ≥ 1 when worse (B/A, or A/B for higher-is-better quantities).
    public var worseningFactor: Double { higherIsBetter == true ? 1 / ratio : ratio }
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
    /// Relative change flagged for cost and load-balance cells.
    public var threshold: Double
    /// Relative change flagged for curves cells (FD, FID-digits).
    public var fdThreshold: Double
    public var cells: [ComparedCell]
    /// Identities of cells present in only one run.
    public var onlyInA: [String]
    public var onlyInB: [String]

    public var regressions: [ComparedCell] { cells.filter { $0.verdict == "regression" } }

    /// Cells of `group` ("cost": timing, ratios and load balance; "curves": sample quality; nil: all) with the
    /// regression verdict that are worse by more than `fraction` (B/A > 1 + fraction; A/B for balancedness).
    public func regressions(above fraction: Double, group: String? = "cost") -> [ComparedCell] {
        regressions.filter { (group == nil || $0.group == group) && $0.worseningFactor > 1 + fraction }
    }

    /// One comparable timing of a run: its identity, value, and raw samples for the interval.
    struct Entry {
        var part: String, cell: String, key: String, unit: String, value: Double, count: Int, samples: [Double]?
    }

    /// Default relative threshold of curves cells: FD at a few hundred samples moves by ±10–30% between seeds.
    public static let defaultFDThreshold = 0.10

    public static func load(_ dirA: URL, _ dirB: URL, threshold: Double,
                            fdThreshold: Double = defaultFDThreshold) throws -> RunComparison {
        let docA = try ResultsStore.loadDocument(directory: dirA), docB = try ResultsStore.loadDocument(directory: dirB)
        return try compare(docA, directoryA: dirA.path, docB, directoryB: dirB.path, threshold: threshold, fdThreshold: fdThreshold)
    }

    public static func compare(_ docA: ResultsDocument, directoryA: String, _ docB: ResultsDocument, directoryB: String,
                               threshold: Double, fdThreshold: Double = defaultFDThreshold) throws -> RunComparison {
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
        var onlyInA = ea.filter { keysB[$0.key] == nil }.map { "\($0.part): \($0.cell)" }
        var onlyInB = eb.filter { !keysA.contains($0.key) }.map { "\($0.part): \($0.cell)" }
        let curves = try CurvesComparison.compare(URL(fileURLWithPath: directoryA), URL(fileURLWithPath: directoryB), threshold: fdThreshold)
        cells += curves.cells
        onlyInA += curves.onlyInA
        onlyInB += curves.onlyInB
        let balance = try LoadBalanceComparison.compare(docA, path: directoryA, docB, path: directoryB, threshold: threshold)
        cells += balance.cells
        onlyInA += balance.onlyInA
        onlyInB += balance.onlyInB
        return RunComparison(a: run(docA, directoryA), b: run(docB, directoryB), threshold: threshold, fdThreshold: fdThreshold,
                             cells: cells, onlyInA: onlyInA, onlyInB: onlyInB)
    }

    /// The verdict of a lower-is-better ratio B/A (see the file comment). `unbounded`: the interval has no finite
    /// end on the worse side, so a change beyond the threshold is "unclear".
    static func verdict(ratio: Double, interval: BootstrapInterval?, threshold: Double, unbounded: Bool = false) -> String {
        if ratio > 1 + threshold { return !unbounded && (interval.map { $0.lower > 1 } ?? true) ? "regression" : "unclear" }
        if ratio < 1 / (1 + threshold) { return !unbounded && (interval.map { $0.upper < 1 } ?? true) ? "improvement" : "unclear" }
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
