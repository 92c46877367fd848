import Foundation
import Metrics

// One finished cell (or one floor measurement): the unit of `curves.jsonl` and `curves.csv`.

public struct CurveRow: Codable, Sendable, Equatable {
    /// Score source label (testbed parameters, or a model later).
    public var source: String
    /// kar1, kar2, pf, rk45, rd, em, or floor.
    public var integrator: String
    public var dlg: Bool
    /// The requested NFE budget (0 for floor rows).
    public var budget: Int
    /// NFE per emitted sample as counted at the model (mean over batches/blocks; DLG excludes warm-up).
    public var nfe: Double
    /// The integrator's step parameter ("N=6", "tol=1e-3"); "exact draws" for floor rows.
    public var step: String
    /// DLG: Langevin steps per sample, ε_main and the budget's skip fraction (nil otherwise).
    public var nSkip: Int?
    public var epsilon: Double?
    public var skipFraction: Double?
    /// FD against the source's reference moments (data units²).
    public var fd: Double
    /// Samples FD was computed from.
    public var samples: Int
    public var seed: Int
    /// Batch size / number of DLG chains.
    public var chains: Int
    /// DLG: mean hand-off level s_min; NFE per chain spent in warm-up (not counted in `nfe`).
    public var meanStartSigma: Double?
    public var warmupNFE: Int?
    /// Wall time of the cell.
    public var seconds: Double
    /// Model sources: FID-digits (Fréchet distance of a digit classifier's features, not Inception FID) and its
    /// bootstrap interval over samples; the pixel FD's interval.
    public var fidDigits: Double?
    public var fidDigitsLower: Double?
    public var fidDigitsUpper: Double?
    public var fdLower: Double?
    public var fdUpper: Double?
    /// Latent models: Inception FID of the decoded samples against the reference statistics (= `fd`), and KID (mean
    /// and std over subsets) when asked for.
    public var fid: Double?
    public var kid: Double?
    public var kidStd: Double?

    enum CodingKeys: String, CodingKey {
        case source, integrator, dlg, budget, nfe, step, nSkip = "n_skip", epsilon, skipFraction = "skip_fraction", fd,
             samples, seed, chains, meanStartSigma = "mean_start_sigma", warmupNFE = "warmup_nfe", seconds
        case fidDigits = "fid_digits", fidDigitsLower = "fid_digits_lower", fidDigitsUpper = "fid_digits_upper"
        case fdLower = "fd_lower", fdUpper = "fd_upper"
        case fid, kid, kidStd = "kid_std"
    }

    /// Identity of a cell for resuming: rows with the same key are the same measurement.
    public var key: String {
        [source, integrator, String(dlg), String(budget), String(seed), String(samples), String(chains),
         epsilon.map { "\($0)" } ?? "-", skipFraction.map { "\($0)" } ?? "-"].joined(separator: "|")
    }

    static let csvHeader = "source,integrator,dlg,budget,nfe,step,n_skip,epsilon,skip_fraction,fd,samples,seed,chains,mean_start_sigma,warmup_nfe,seconds,fid_digits,fid_digits_lower,fid_digits_upper,fd_lower,fd_upper,fid,kid,kid_std"

    /// One CSV line (CSVText, without its newline), in `csvHeader`'s order.
    var csvLine: String {
        func o(_ v: Double?) -> CSVText.Field { v.map { .number($0) } ?? .empty }
        func o(_ v: Int?) -> CSVText.Field { v.map { .number(Double($0)) } ?? .empty }
        let fields: [CSVText.Field] = [
            .text(source), .text(integrator), .bool(dlg), .number(Double(budget)), .number(nfe), .text(step), o(nSkip), o(epsilon),
            o(skipFraction), .number(fd), .number(Double(samples)), .number(Double(seed)), .number(Double(chains)),
            o(meanStartSigma), o(warmupNFE), .number((seconds * 1000).rounded() / 1000), o(fidDigits), o(fidDigitsLower),
            o(fidDigitsUpper), o(fdLower), o(fdUpper), o(fid), o(kid), o(kidStd)]
        return String(CSVText.line(fields).dropLast())
    }
}

public enum CurveStoreError: Error, CustomStringConvertible {
    case malformedLine(file: String, line: Int, reason: String)
    case io(file: String, reason: String)
    public var description: String {
        switch self {
        case .malformedLine(let f, let l, let r): return "\(f):\(l): not a curves row (\(r))"
        case .io(let f, let r): return "\(f): \(r)"
        }
    }
}

/// Append-only `curves.jsonl` + `curves.csv` in one directory. Each finished cell is appended and flushed, so an
/// interrupted sweep loses at most the cell in progress and resumes by skipping the keys already present.
public final class CurveStore {
    public let directory: String
    public var jsonlPath: String { directory + "/curves.jsonl" }
    public var csvPath: String { directory + "/curves.csv" }
    public private(set) var rows: [CurveRow] = []
    private var keys = Set<String>()

    public init(directory: String) throws {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw CurveStoreError.io(file: directory, reason: "cannot create directory: \(error.localizedDescription)")
        }
        if let text = try? String(contentsOfFile: jsonlPath, encoding: .utf8) {
            let decoder = JSONDecoder()
            for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let t = line.trimmingCharacters(in: .whitespaces)
                if t.isEmpty { continue }
                do {
                    let row = try decoder.decode(CurveRow.self, from: Data(t.utf8))
                    rows.append(row)
                    keys.insert(row.key)
                } catch {
                    throw CurveStoreError.malformedLine(file: jsonlPath, line: i + 1, reason: "\(error)")
                }
            }
        }
    }

    public func contains(_ key: String) -> Bool { keys.contains(key) }

    public func append(_ row: CurveRow) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = String(decoding: try encoder.encode(row), as: UTF8.self)
        try appendLine(json, to: jsonlPath, header: nil)
        try appendLine(row.csvLine, to: csvPath, header: CurveRow.csvHeader)
        rows.append(row)
        keys.insert(row.key)
    }

    private func appendLine(_ line: String, to path: String, header: String?) throws {
        let fm = FileManager.default
        if !fm.fileExists(atPath: path) {
            let initial = (header.map { $0 + "\n" } ?? "")
            guard fm.createFile(atPath: path, contents: Data(initial.utf8)) else {
                throw CurveStoreError.io(file: path, reason: "cannot create file")
            }
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw CurveStoreError.io(file: path, reason: "cannot open for append") }
        defer { try? h.close() }
        do {
            try h.seekToEnd()
            try h.write(contentsOf: Data((line + "\n").utf8))
            try h.synchronize()
        } catch {
            throw CurveStoreError.io(file: path, reason: "write failed: \(error.localizedDescription)")
        }
    }
}
