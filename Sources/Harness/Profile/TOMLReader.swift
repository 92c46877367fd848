// A strict reader over one TOML table: typed getters that record which keys were read, so `finish()` can reject
// every key the schema does not know. Every error carries the full key path.
import TOMLKit

struct TOMLReader {
    let table: TOMLTable
    let file: String
    /// Key path of this table ("" for the root).
    let path: String
    private var consumed: Set<String> = []

    init(_ table: TOMLTable, file: String, path: String) {
        self.table = table
        self.file = file
        self.path = path
    }

    func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func error(_ kind: ProfileError.Kind, _ keyPath: String, _ message: String) -> ProfileError {
        ProfileError(kind, file: file, keyPath: keyPath, message)
    }

    func has(_ key: String) -> Bool { table.contains(key: key) }

    private mutating func raw(_ key: String) -> TOMLValueConvertible? {
        consumed.insert(key)
        return table[key]
    }

    /// Rejects keys that were never asked for. `known` lists every key of the table's schema (for the message).
    func finish(known: [String]) throws {
        for key in table.keys.sorted() where !consumed.contains(key) {
            throw error(.unknownKey, keyPath(key), "unknown key; expected one of: \(known.joined(separator: ", "))")
        }
    }

    static func typeName(_ v: TOMLValueConvertible) -> String {
        switch v.type {
        case .bool: return "a boolean"
        case .int: return "an integer"
        case .double: return "a float"
        case .string: return "a string"
        case .table: return "a table"
        case .array: return "an array"
        default: return "a date/time"
        }
    }

    // MARK: scalars

    static func convertString(_ v: TOMLValueConvertible, at kp: String, _ r: TOMLReader) throws -> String {
        guard let s = v.string else { throw r.error(.wrongType, kp, "expected a string, found \(typeName(v))") }
        return s
    }

    static func convertInt(_ v: TOMLValueConvertible, at kp: String, _ r: TOMLReader) throws -> Int {
        guard v.type == .int, let i = v.int else { throw r.error(.wrongType, kp, "expected an integer, found \(typeName(v))") }
        return i
    }

    static func convertDouble(_ v: TOMLValueConvertible, at kp: String, _ r: TOMLReader) throws -> Double {
        if v.type == .int, let i = v.int { return Double(i) }
        guard let d = v.double else { throw r.error(.wrongType, kp, "expected a number, found \(typeName(v))") }
        guard d.isFinite else { throw r.error(.badValue, kp, "expected a finite number, found \(d)") }
        return d
    }

    mutating func string(_ key: String) throws -> String? {
        guard let v = raw(key) else { return nil }
        return try Self.convertString(v, at: keyPath(key), self)
    }

    mutating func requiredString(_ key: String) throws -> String {
        guard let s = try string(key) else { throw error(.missingKey, keyPath(key), "missing; expected a string") }
        return s
    }

    mutating func bool(_ key: String) throws -> Bool? {
        guard let v = raw(key) else { return nil }
        guard v.type == .bool, let b = v.bool else {
            throw error(.wrongType, keyPath(key), "expected true or false, found \(Self.typeName(v))")
        }
        return b
    }

    /// An integer within `range` (inclusive), described in errors as `expected`.
    mutating func int(_ key: String, in range: ClosedRange<Int>, _ expected: String) throws -> Int? {
        guard let v = raw(key) else { return nil }
        let i = try Self.convertInt(v, at: keyPath(key), self)
        guard range.contains(i) else { throw error(.badValue, keyPath(key), "expected \(expected), found \(i)") }
        return i
    }

    mutating func double(_ key: String, _ ok: (Double) -> Bool, _ expected: String) throws -> Double? {
        guard let v = raw(key) else { return nil }
        let d = try Self.convertDouble(v, at: keyPath(key), self)
        guard ok(d) else { throw error(.badValue, keyPath(key), "expected \(expected), found \(d)") }
        return d
    }

    /// A string naming one case of `E`.
    mutating func choice<E: RawRepresentable & CaseIterable>(_ key: String, _: E.Type) throws -> E? where E.RawValue == String {
        guard let s = try string(key) else { return nil }
        guard let e = E(rawValue: s) else {
            throw error(.badValue, keyPath(key), "expected one of \(E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")), found \"\(s)\"")
        }
        return e
    }

    // MARK: arrays

    /// Elements of an array with their key paths (`key[i]`); a non-empty array unless `allowEmpty`.
    mutating func array(_ key: String, allowEmpty: Bool = false) throws -> [(TOMLValueConvertible, String)]? {
        guard let v = raw(key) else { return nil }
        guard let a = v.array else { throw error(.wrongType, keyPath(key), "expected an array, found \(Self.typeName(v))") }
        if a.isEmpty && !allowEmpty { throw error(.badValue, keyPath(key), "expected a non-empty array") }
        return a.indices.map { (a[$0], "\(keyPath(key))[\($0)]") }
    }

    mutating func intArray(_ key: String, in range: ClosedRange<Int>, _ expected: String) throws -> [Int]? {
        guard let items = try array(key) else { return nil }
        return try items.map { v, kp in
            let i = try Self.convertInt(v, at: kp, self)
            guard range.contains(i) else { throw error(.badValue, kp, "expected \(expected), found \(i)") }
            return i
        }
    }

    mutating func stringArray(_ key: String) throws -> [String]? {
        guard let items = try array(key) else { return nil }
        return try items.map { try Self.convertString($0.0, at: $0.1, self) }
    }

    mutating func choiceArray<E: RawRepresentable & CaseIterable>(_ key: String, _: E.Type) throws -> [E]? where E.RawValue == String {
        guard let items = try array(key) else { return nil }
        return try items.map { v, kp in
            let s = try Self.convertString(v, at: kp, self)
            guard let e = E(rawValue: s) else {
                throw error(.badValue, kp, "expected one of \(E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")), found \"\(s)\"")
            }
            return e
        }
    }

    // MARK: tables

    mutating func table(_ key: String) throws -> TOMLReader? {
        guard let v = raw(key) else { return nil }
        guard let t = v.table else { throw error(.wrongType, keyPath(key), "expected a table, found \(Self.typeName(v))") }
        return TOMLReader(t, file: file, path: keyPath(key))
    }

    /// `[[key]]` array of tables (a single `[key]` table is accepted as a one-element array).
    mutating func tables(_ key: String) throws -> [TOMLReader]? {
        guard let v = raw(key) else { return nil }
        if let t = v.table { return [TOMLReader(t, file: file, path: keyPath(key))] }
        guard let a = v.array else { throw error(.wrongType, keyPath(key), "expected an array of tables, found \(Self.typeName(v))") }
        return try a.indices.map { i in
            guard let t = a[i].table else {
                throw error(.wrongType, "\(keyPath(key))[\(i)]", "expected a table, found \(Self.typeName(a[i]))")
            }
            return TOMLReader(t, file: file, path: "\(keyPath(key))[\(i)]")
        }
    }
}
