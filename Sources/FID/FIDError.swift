// Errors of the FID pipeline: each names the file (and key or field) and says what was expected.

public struct FIDError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let reason: String
    public init(file: String, _ reason: String) { self.file = file; self.reason = reason }
    public var description: String { "\(file): \(reason)" }
}
