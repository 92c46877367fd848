import Foundation

/// `--json` output of the benchmarks: one JSON object per line, encoded from a Codable row type with snake_case
/// keys; a non-finite number becomes null (JSON has no NaN).
enum JSONLines {
    static func print<T: Encodable>(_ row: T) {
        let enc = JSONEncoder()
        enc.keyEncodingStrategy = .convertToSnakeCase
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        guard let data = try? enc.encode(row) else { return }
        // `convertToString` quotes the non-finite numbers; as null they stay numbers-or-nothing for readers.
        let text = String(decoding: data, as: UTF8.self)
            .replacingOccurrences(of: "\"nan\"", with: "null").replacingOccurrences(of: "\"inf\"", with: "null")
            .replacingOccurrences(of: "\"-inf\"", with: "null")
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
