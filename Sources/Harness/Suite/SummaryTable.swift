// The suite's terminal summary: each part's findings and its first table, as aligned text (default), markdown,
// CSV (one tidy table: part, table, row, column, unit, value) or JSON (the results document). Text and markdown
// tables keep the columns that fit `width` characters, left to right, and name the CSV holding the rest.
import Foundation
import Metrics

public enum SummaryTable {
    public enum Format: String, CaseIterable, Sendable { case text, md, csv, json }

    /// Terminal width the text and markdown tables fit.
    public static let width = 100

    public static func render(_ doc: ResultsDocument, format: Format = .text) throws -> String {
        switch format {
        case .text: return render(doc)
        case .md: return markdown(doc)
        case .csv: return csv(doc)
        case .json:
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            return String(decoding: try enc.encode(doc), as: UTF8.self)
        }
    }

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

    public static func markdown(_ doc: ResultsDocument) -> String {
        var out = ["# moebench suite '\(doc.profile.name)': \(doc.status)", "",
                   "\(doc.machine.cpuModel ?? "unknown CPU"), \(doc.machine.activeCores) cores"]
        for part in doc.parts {
            out += ["", "## \(part.title) [\(part.status)]" + (part.error.map { " — \($0)" } ?? ""), ""]
            out += part.summary.map { "- " + $0 }
            if let t = part.tables.first {
                let (keep, header, rows) = fitted(t, padding: 3)
                out += ["", "| " + header.joined(separator: " | ") + " |", "|" + keep.map { _ in "---|" }.joined()]
                out += rows.map { "| " + $0.joined(separator: " | ") + " |" }
                if let more = omittedNote(t, kept: keep.count) { out += ["", more] }
            }
        }
        return out.joined(separator: "\n")
    }

    /// Every part's first table in one tidy CSV: part, table, row (0-based), column, unit, value.
    public static func csv(_ doc: ResultsDocument) -> String {
        var rows: [[CSVText.Field]] = []
        for part in doc.parts {
            guard let t = part.tables.first else { continue }
            for (r, row) in t.rows.enumerated() {
                for (c, v) in row.enumerated() where c < t.columns.count {
                    let value: CSVText.Field
                    switch v {
                    case let .number(d): value = .number(d)
                    case let .string(s): value = .text(s)
                    case let .bool(b): value = .bool(b)
                    case .null: value = .empty
                    default: value = .text(v.description)
                    }
                    rows.append([.text(part.id), .text(t.id), .number(Double(r)), .text(t.columns[c].name), .text(t.columns[c].unit), value])
                }
            }
        }
        return CSVText.document(header: ["part", "table", "row", "column", "unit", "value"], rows: rows)
    }

    /// A table as aligned columns; numbers with 4 significant digits; as many columns as fit `width`.
    public static func text(_ t: ResultTable) -> String {
        let (keep, header, rows) = fitted(t, padding: 2)
        var widths = header.map(\.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            "  " + cells.enumerated().map { i, c in c.padding(toLength: widths[min(i, widths.count - 1)], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }
        var lines = [line(header)] + rows.map(line)
        if let more = omittedNote(t, kept: keep.count) { lines.append("  " + more) }
        return lines.joined(separator: "\n")
    }

    /// The leading columns whose cells fit `width` with `padding` characters between columns (at least one column).
    static func fitted(_ t: ResultTable, padding: Int) -> (keep: [Int], header: [String], rows: [[String]]) {
        let header = t.columns.map { $0.unit.isEmpty ? $0.name : "\($0.name) [\($0.unit)]" }
        let rows = t.rows.map { $0.map(cell) }
        var keep: [Int] = [], used = 2
        for i in header.indices {
            let w = max(header[i].count, rows.map { i < $0.count ? $0[i].count : 0 }.max() ?? 0)
            if !keep.isEmpty && used + w > width { break }
            keep.append(i)
            used += w + padding
        }
        return (keep, keep.map { header[$0] }, rows.map { r in keep.map { $0 < r.count ? r[$0] : "" } })
    }

    static func omittedNote(_ t: ResultTable, kept: Int) -> String? {
        guard kept < t.columns.count else { return nil }
        return "(+\(t.columns.count - kept) more column(s) in \(t.csv ?? "\(t.id).csv"))"
    }

    static func cell(_ v: JSONValue) -> String {
        switch v {
        case let .number(n):
            if n == n.rounded() && abs(n) < 1e9 { return String(Int(n)) }
            return String(format: "%.4g", n)
        case let .string(s): return s
        case let .bool(b): return b ? "yes" : "no"
        case .null: return "—"
        default: return v.description
        }
    }
}
