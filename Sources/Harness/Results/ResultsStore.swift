// The results directory `results/<timestamp>-<profile>/`: results.json (rewritten atomically after every finished
// part: write a temporary file, then rename over the old one, so a reader or an interrupted suite never sees a
// half-written file), CSV tables, SVG figures, and index.html (written by ReportRenderer).
import Foundation

public enum ResultsError: Error, CustomStringConvertible {
    case badFileName(String)
    case io(path: String, reason: String)
    case badDocument(path: String, reason: String)

    public var description: String {
        switch self {
        case let .badFileName(n): return "results file name \"\(n)\": expected letters, digits, '-', '_' or '.' (no directories)"
        case let .io(path, reason): return "\(path): \(reason)"
        case let .badDocument(path, reason): return "\(path): not a moebench results.json: \(reason)"
        }
    }
}

public final class ResultsStore: @unchecked Sendable {
    public let directory: URL
    public var document: ResultsDocument { lock.withLock { doc } }
    /// Guards `doc` and the writes of results.json: the suite's thread adds parts while an interruption (handled
    /// on another thread) may mark the run interrupted.
    private let lock = NSLock()
    private var doc: ResultsDocument

    public var resultsFile: URL { directory.appendingPathComponent("results.json") }

    /// Creates `<root>/<yyyyMMdd-HHmmss>-<profile>/` (suffix -2, -3… if taken) and writes the initial results.json.
    public static func create(root: URL, profile: Profile, machine: MachineInfo, date: Date = Date()) throws -> ResultsStore {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyyMMdd-HHmmss"
        let base = "\(f.string(from: date))-\(profile.name)"
        let fm = FileManager.default
        var dir = root.appendingPathComponent(base)
        var n = 2
        while fm.fileExists(atPath: dir.path) {
            dir = root.appendingPathComponent("\(base)-\(n)")
            n += 1
        }
        do { try fm.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw ResultsError.io(path: dir.path, reason: "cannot create the results directory (\(error.localizedDescription))")
        }
        let now = iso8601(date)
        let doc = ResultsDocument(schema: ResultsDocument.currentSchema, status: .running, startedAt: now, updatedAt: now,
                                  finishedAt: nil, resumedAt: nil, moebench: MoebenchVersion.description, machine: machine, profile: profile,
                                  seeds: profile.allSeeds, parts: [])
        let store = ResultsStore(directory: dir, document: doc)
        try store.save()
        return store
    }

    /// Opens an existing results directory (e.g. for `moebench report DIR`).
    public static func open(directory: URL) throws -> ResultsStore {
        ResultsStore(directory: directory, document: try loadDocument(directory: directory))
    }

    public static func loadDocument(directory: URL) throws -> ResultsDocument {
        let file = directory.appendingPathComponent("results.json")
        guard let data = FileManager.default.contents(atPath: file.path) else {
            throw ResultsError.io(path: file.path, reason: "missing or unreadable")
        }
        do {
            return try JSONDecoder().decode(ResultsDocument.self, from: data)
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw ResultsError.badDocument(path: file.path, reason: "missing field \(Self.codingPath(ctx.codingPath + [key]))")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw ResultsError.badDocument(path: file.path, reason: "wrong type at \(Self.codingPath(ctx.codingPath))")
        } catch {
            throw ResultsError.badDocument(path: file.path, reason: "\(error)")
        }
    }

    static func codingPath(_ keys: [CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().drop { $0 == "." }.description
    }

    init(directory: URL, document: ResultsDocument) {
        self.directory = directory
        self.doc = document
    }

    /// Reopens the results directory of an interrupted or failed run of the same profile: parts that finished
    /// ("done") are kept, the status goes back to "running". A different profile (name or settings) is refused,
    /// since its cells would not be comparable.
    public static func resume(directory: URL, profile: Profile) throws -> ResultsStore {
        var doc = try loadDocument(directory: directory)
        let file = directory.appendingPathComponent("results.json").path
        guard doc.profile.name == profile.name else {
            throw ResultsError.badDocument(path: file, reason: "written by profile '\(doc.profile.name)', not '\(profile.name)'; resume with the same profile")
        }
        let enc = JSONEncoder()
        enc.outputFormatting = .sortedKeys
        guard (try? enc.encode(doc.profile)) == (try? enc.encode(profile)) else {
            throw ResultsError.badDocument(path: file, reason: "profile '\(profile.name)' has changed since this run started; resume needs the same settings (or start a new run)")
        }
        guard doc.status != .complete else {
            throw ResultsError.badDocument(path: file, reason: "this run is complete; nothing to resume")
        }
        doc.parts.removeAll { $0.status != .done }
        doc.status = .running
        doc.finishedAt = nil
        doc.resumedAt = (doc.resumedAt ?? []) + [iso8601(Date())]
        let store = ResultsStore(directory: directory, document: doc)
        try store.save()
        return store
    }

    /// The part `id` if it finished in an earlier (interrupted) run of this directory.
    public func finishedPart(_ id: String) -> ResultPart? {
        lock.withLock { doc.parts.first { $0.id == id && $0.status == .done } }
    }

    /// Status "interrupted" for the run and for every part not done, then rewrites results.json.
    public func markInterrupted(date: Date = Date()) throws {
        try lock.withLock {
            for i in doc.parts.indices where doc.parts[i].status != .done && doc.parts[i].status != .failed {
                doc.parts[i].status = .interrupted
            }
            doc.status = .interrupted
            doc.finishedAt = Self.iso8601(date)
            try saveLocked()
        }
    }

    static func iso8601(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: d)
    }

    static func checkName(_ name: String) throws {
        guard !name.isEmpty, name != ".", name != "..",
              name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
            throw ResultsError.badFileName(name)
        }
    }

    /// Writes `data` to `name` inside the directory atomically (temporary file + rename).
    public func writeFile(_ name: String, _ data: Data) throws {
        try Self.checkName(name)
        try Self.atomicWrite(data, to: directory.appendingPathComponent(name))
    }

    /// Writes a table's CSV as `<table.id>.csv` and returns the table with `csv` set.
    @discardableResult
    public func writeCSV(_ table: ResultTable) throws -> ResultTable {
        var t = table
        t.csv = "\(table.id).csv"
        try writeFile(t.csv!, Data(table.csvText().utf8))
        return t
    }

    /// Writes an SVG document as `name` (must end in .svg).
    public func writeSVG(_ name: String, _ svg: String) throws {
        guard name.hasSuffix(".svg") else { throw ResultsError.badFileName(name) }
        try writeFile(name, Data(svg.utf8))
    }

    /// Adds a finished part (replacing a part with the same id) and rewrites results.json.
    public func add(_ part: ResultPart) throws {
        try lock.withLock {
            guard doc.status != .interrupted else { return }
            if let i = doc.parts.firstIndex(where: { $0.id == part.id }) {
                doc.parts[i] = part
            } else {
                doc.parts.append(part)
            }
            try saveLocked()
        }
    }

    /// Records the run's roofline and rewrites results.json.
    public func setRoofline(_ r: RooflineRecord) throws {
        try lock.withLock {
            doc.roofline = r
            try saveLocked()
        }
    }

    /// Marks the suite finished ("complete" or "failed") and rewrites results.json.
    public func finish(status: RunStatus = .complete, date: Date = Date()) throws {
        try lock.withLock {
            guard doc.status != .interrupted else { return }
            doc.status = status
            doc.finishedAt = Self.iso8601(date)
            try saveLocked()
        }
    }

    public func save() throws {
        try lock.withLock { try saveLocked() }
    }

    private func saveLocked() throws {
        doc.updatedAt = Self.iso8601(Date())
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data: Data
        do { data = try enc.encode(doc) } catch {
            throw ResultsError.io(path: resultsFile.path, reason: "cannot encode results (\(error))")
        }
        try Self.atomicWrite(data, to: resultsFile)
    }

    static func atomicWrite(_ data: Data, to url: URL) throws {
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        guard FileManager.default.createFile(atPath: tmp.path, contents: data) else {
            throw ResultsError.io(path: tmp.path, reason: "cannot write")
        }
        guard rename(tmp.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(tmp.path)
            throw ResultsError.io(path: url.path, reason: "cannot rename the temporary file into place (\(reason))")
        }
    }
}
