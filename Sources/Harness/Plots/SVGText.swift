// Escaping and number formatting shared by the SVG and HTML writers.
import Foundation

enum Markup {
    /// Escapes text for XML/HTML content and attribute values.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    /// Compact human formatting: integers plainly, others with up to 4 significant digits.
    static func number(_ v: Double) -> String {
        if !v.isFinite { return String(v) }
        if v == v.rounded(), abs(v) < 1e12 { return String(Int64(v)) }
        let a = abs(v)
        if a >= 1e6 || a < 1e-3 { return String(format: "%.3e", v) }
        return String(format: "%.4g", v)
    }
}
