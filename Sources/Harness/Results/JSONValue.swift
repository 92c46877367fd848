// results.json's free-form payloads use the engine's JSONValue (DiT/JSONValue.swift); these helpers convert
// between it and Codable types.
import DiT
import Foundation

public typealias JSONValue = DiT.JSONValue

extension DiT.JSONValue {
    /// Any Encodable value as JSON (through JSONEncoder; non-finite floats are an error).
    public static func from<T: Encodable>(_ value: T) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(value))
    }

    /// Decodes this value as `T`.
    public func decode<T: Decodable>(_: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: JSONEncoder().encode(self))
    }
}
