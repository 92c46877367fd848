// The schema of results.json (documented field by field in docs/results.md; bump `schema` on breaking changes).
import Foundation

/// Where a suite run stands (results.json `status`).
public enum RunStatus: String, Codable, Sendable {
    /// The suite is running (or was killed by a signal it could not catch).
    case running
    case complete
    /// A part failed; the others were still run.
    case failed
    /// SIGINT/SIGTERM; `moebench suite --resume DIR` continues it.
    case interrupted
}

/// Where one part stands (a part's `status`).
public enum PartStatus: String, Codable, Sendable {
    case done
    /// `error` says why; a failed part keeps what it measured.
    case failed
    /// Partial, rewritten as it goes (e.g. cost after each model).
    case running
    case interrupted
}

public struct ResultsDocument: Codable, Equatable, Sendable {
    public static let currentSchema = "moebench-results/1"

    public var schema: String
    /// "running" while the suite runs, "complete", "failed" (a part failed) or "interrupted" (SIGINT/SIGTERM;
    /// `moebench suite --resume DIR` continues it). A run killed without a signal it can catch stays "running".
    public var status: RunStatus
    /// ISO 8601 times (UTC).
    public var startedAt: String
    public var updatedAt: String
    public var finishedAt: String?
    /// When `--resume` continued this run, one entry per resumption.
    public var resumedAt: [String]?
    /// `moebench <version> (git <commit>)` of the binary that ran (absent in documents of older versions).
    public var moebench: String?
    public var machine: MachineInfo
    public var profile: Profile
    /// Every seed the suite used.
    public var seeds: [UInt64]
    /// Finished parts, in completion order.
    public var parts: [ResultPart]
}

/// One finished part of a suite (cost, load balance, curves, …): prose, tables, figures and raw data.
public struct ResultPart: Codable, Equatable, Sendable {
    /// Stable identifier, e.g. "cost", "load_balance", "curves".
    public var id: String
    public var title: String
    /// "done", "failed" (then `error` says why; a failed part keeps what it measured), "running" (partial, rewritten
    /// as it goes) or "interrupted".
    public var status: PartStatus
    public var error: String?
    public var startedAt: String?
    public var finishedAt: String?
    /// Short human-readable findings shown above the tables.
    public var summary: [String]
    public var tables: [ResultTable]
    public var figures: [ResultFigure]
    /// Part-specific machine-readable payload (e.g. a LoadBalanceReport), documented per part in docs/results.md.
    public var data: JSONValue?

    public init(id: String, title: String, status: PartStatus = .done, error: String? = nil, startedAt: String? = nil,
                finishedAt: String? = nil, summary: [String] = [], tables: [ResultTable] = [],
                figures: [ResultFigure] = [], data: JSONValue? = nil) {
        self.id = id
        self.title = title
        self.status = status
        self.error = error
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.summary = summary
        self.tables = tables
        self.figures = figures
        self.data = data
    }
}

public struct ResultTable: Codable, Equatable, Sendable {
    public struct Column: Codable, Equatable, Sendable {
        public var name: String
        /// Unit shown in the header ("ms", "GFLOP", "images/s", "" for dimensionless).
        public var unit: String
        public init(_ name: String, unit: String = "") {
            self.name = name
            self.unit = unit
        }
    }

    public var id: String
    public var title: String
    public var columns: [Column]
    /// Cells: numbers, strings or null (not measured).
    public var rows: [[JSONValue]]
    /// The CSV file holding the same table, relative to the results directory.
    public var csv: String?
    public var note: String?

    public init(id: String, title: String, columns: [Column], rows: [[JSONValue]], csv: String? = nil, note: String? = nil) {
        self.id = id
        self.title = title
        self.columns = columns
        self.rows = rows
        self.csv = csv
        self.note = note
    }

    /// CSV text: header `name [unit]`, numbers with full precision, strings quoted when needed.
    public func csvText() -> String {
        func quote(_ s: String) -> String {
            s.contains(where: { ",\"\n".contains($0) }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        var out = columns.map { quote($0.unit.isEmpty ? $0.name : "\($0.name) [\($0.unit)]") }.joined(separator: ",") + "\n"
        for row in rows {
            out += row.map { cell -> String in
                switch cell {
                case let .number(d): return d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
                case let .string(s): return quote(s)
                case let .bool(b): return String(b)
                case .null: return ""
                default: return quote("\(cell)")
                }
            }.joined(separator: ",") + "\n"
        }
        return out
    }
}

public struct ResultFigure: Codable, Equatable, Sendable {
    public var id: String
    public var title: String
    /// SVG file relative to the results directory; the report inlines it.
    public var file: String
    public var caption: String?

    public init(id: String, title: String, file: String, caption: String? = nil) {
        self.id = id
        self.title = title
        self.file = file
        self.caption = caption
    }
}
