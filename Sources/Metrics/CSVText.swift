// The one CSV writer of moebench (RFC 4180): fields separated by ',', lines ended by '\n', a field quoted when it
// holds ',', '"', '\n' or '\r' (inner quotes doubled). Numbers print at full precision (Swift's shortest
// round-tripping form); integral values below 1e15 print without a fraction; non-finite values print as empty.

public enum CSVText {
    public enum Field: Equatable, Sendable {
        case text(String), number(Double), bool(Bool), empty
    }

    public static func quote(_ s: String) -> String {
        s.contains(where: { ",\"\n\r".contains($0) }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    public static func number(_ d: Double) -> String {
        guard d.isFinite else { return "" }
        return d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
    }

    public static func field(_ f: Field) -> String {
        switch f {
        case let .text(s): return quote(s)
        case let .number(d): return number(d)
        case let .bool(b): return String(b)
        case .empty: return ""
        }
    }

    /// One line, with its '\n'.
    public static func line(_ fields: [Field]) -> String { fields.map(field).joined(separator: ",") + "\n" }

    /// A header line of names followed by the rows.
    public static func document(header: [String], rows: [[Field]]) -> String {
        line(header.map { .text($0) }) + rows.map(line).joined()
    }
}
