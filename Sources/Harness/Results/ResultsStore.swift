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

public final class ResultsStore {
    public let directory: URL
    public private(set) var document: ResultsDocument

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
        let doc = ResultsDocument(schema: ResultsDocument.currentSchema, status: "running", startedAt: now, updatedAt: now,
                                  finishedAt: nil, moebench: MoebenchVersion.description, machine: machine, profile: profile,
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
        self.document = document
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
        if let i = document.parts.firstIndex(where: { $0.id == part.id }) {
            document.parts[i] = part
        } else {
            document.parts.append(part)
        }
        try save()
    }

    /// Records the run's roofline and rewrites results.json.
    public func setRoofline(_ r: RooflineRecord) throws {
        document.roofline = r
        try save()
    }

    /// Marks the suite finished ("complete" or "failed") and rewrites results.json.
    public func finish(status: String = "complete", date: Date = Date()) throws {
        document.status = status
        document.finishedAt = Self.iso8601(date)
        try save()
    }

    public func save() throws {
        document.updatedAt = Self.iso8601(Date())
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data: Data
        do { data = try enc.encode(document) } catch {
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
