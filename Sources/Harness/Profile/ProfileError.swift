// Errors of profile loading: always name the file, the key path (e.g. `cost.batch_sizes[2]`) and what was expected.

public struct ProfileError: Error, Equatable, CustomStringConvertible {
    public enum Kind: String, Equatable, Sendable {
        /// The file is not valid TOML (then `keyPath` is empty and `line`/`column` are set).
        case syntax
        case unreadable
        case unknownKey
        case missingKey
        case wrongType
        case badValue
        /// A reference to a model id that is not defined, or of the wrong kind.
        case badReference
    }

    public var kind: Kind
    public var file: String
    public var keyPath: String
    public var message: String
    public var line: Int?
    public var column: Int?

    public init(_ kind: Kind, file: String, keyPath: String, _ message: String, line: Int? = nil, column: Int? = nil) {
        self.kind = kind
        self.file = file
        self.keyPath = keyPath
        self.message = message
        self.line = line
        self.column = column
    }

    public var description: String {
        var where_ = file
        if let line { where_ += ":\(line)" + (column.map { ":\($0)" } ?? "") }
        return keyPath.isEmpty ? "\(where_): \(message)" : "\(where_): \(keyPath): \(message)"
    }
}
