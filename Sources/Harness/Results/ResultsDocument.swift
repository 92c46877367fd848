// The schema of results.json (documented field by field in docs/results.md; bump `schema` on breaking changes).
import Foundation
import Metrics

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
    public static let currentSchema = "moebench-results/2"

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
    /// The roofline the cost part's rates are divided by, measured once per run (absent without a cost part and in
    /// schema 1).
    public var roofline: RooflineRecord?
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
    /// How busy the machine was before and after the part (absent where /proc is unavailable and in schema 1).
    public var machineLoad: PartLoad?

    public init(id: String, title: String, status: PartStatus = .done, error: String? = nil, startedAt: String? = nil,
                finishedAt: String? = nil, summary: [String] = [], tables: [ResultTable] = [],
                figures: [ResultFigure] = [], data: JSONValue? = nil, machineLoad: PartLoad? = nil) {
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
        self.machineLoad = machineLoad
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

    /// CSV text (CSVText): header `name [unit]`, numbers with full precision, null as an empty field.
    public func csvText() -> String {
        CSVText.document(header: columns.map { $0.unit.isEmpty ? $0.name : "\($0.name) [\($0.unit)]" },
                         rows: rows.map { $0.map { cell -> CSVText.Field in
                             switch cell {
                             case let .number(d): return .number(d)
                             case let .string(s): return .text(s)
                             case let .bool(b): return .bool(b)
                             case .null: return .empty
                             default: return .text("\(cell)")
                             }
                         } })
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
