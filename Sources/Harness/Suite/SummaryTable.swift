// The suite's terminal summary: each part's findings and its first table, as aligned text.
import Foundation

public enum SummaryTable {
    public static func render(_ doc: ResultsDocument) -> String {
        var out = ["moebench suite '\(doc.profile.name)': \(doc.status)  (\(doc.machine.cpuModel ?? "unknown CPU"), \(doc.machine.activeCores) cores)"]
        for part in doc.parts {
            out.append("")
            out.append("== \(part.title) [\(part.status)]" + (part.error.map { " — \($0)" } ?? ""))
            out += part.summary.map { "  " + $0 }
            if let table = part.tables.first { out.append(text(table)) }
        }
        return out.joined(separator: "\n")
    }

    /// A table as aligned columns; numbers with 4 significant digits.
    public static func text(_ t: ResultTable) -> String {
        let header = t.columns.map { $0.unit.isEmpty ? $0.name : "\($0.name) [\($0.unit)]" }
        let rows = t.rows.map { $0.map(cell) }
        var widths = header.map(\.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            "  " + cells.enumerated().map { i, c in c.padding(toLength: widths[min(i, widths.count - 1)], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }

    static func cell(_ v: JSONValue) -> String {
        switch v {
        case let .number(n):
            if n == n.rounded() && abs(n) < 1e9 { return String(Int(n)) }
            return String(format: "%.4g", n)
        case let .string(s): return s
        case let .bool(b): return b ? "yes" : "no"
        case .null: return "–"
        default: return v.description
        }
    }
}
