import Foundation

/// `--json` output of the benchmarks: one JSON object per line, encoded from a Codable row type with snake_case
/// keys; a non-finite number becomes null (JSON has no NaN).
enum JSONLines {
    static func print<T: Encodable>(_ row: T) {
        let enc = JSONEncoder()
        enc.keyEncodingStrategy = .convertToSnakeCase
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // JSONEncoder can only write a non-finite number as a string; a sentinel no field holds marks it for null.
        let mark = "__moebench_non_finite__"
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: mark, negativeInfinity: mark, nan: mark)
        guard let data = try? enc.encode(row) else { return }
        let text = String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\"\(mark)\"", with: "null")
        Swift.print(text)
    }
}

/// A measured physical peak (`moebench-bench peak`, and the first lines of `engine`).
struct PeakRow: Encodable {
    var precision: String
    var threads: Int?
    var bestGflops: Double?
    var medianGflops: Double?
    var supported: Bool
}

/// The best achievable GEMM rate of one backend × precision on the DiT layer shapes.
struct GEMMRateRow: Encodable {
    var gemmRate: String
    var precision: String
    var threads: Int
    var gflops: Double
}
