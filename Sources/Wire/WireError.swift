import Foundation

// Errors of the wire layer and the protocol error codes they map to (docs/protocol.md §5).

/// Protocol error codes carried by ERROR frames.
public enum WireErrorCode: UInt16, Sendable, CaseIterable {
    case badMagic = 1, unsupportedVersion, badHeaderChecksum, badPayloadChecksum, frameTooLarge, unknownType,
         malformedPayload, unexpectedMessage, authFailed, fingerprintMismatch, expertNotHosted, badFlags,
         internalError, shuttingDown, truncated, timeout, tooManyConnections
}

public enum WireError: Error, Equatable, CustomStringConvertible {
    /// The stream or buffer ended inside a frame.
    case truncated(expected: Int, got: Int)
    case badMagic(UInt32)
    case unsupportedVersion(UInt16)
    case badHeaderChecksum(expected: UInt32, got: UInt32)
    case badPayloadChecksum(expected: UInt64, got: UInt64)
    case frameTooLarge(length: Int, limit: Int)
    case unknownType(UInt8)
    case badFlags(UInt8)
    case malformed(field: String, reason: String)
    case unexpectedMessage(got: String, expected: String)
    case authFailed(String)
    case fingerprintMismatch(String)
    /// The peer sent ERROR.
    case peer(code: UInt16, text: String)
    case timeout(String)
    /// The peer closed the connection at a frame boundary.
    case closed
    case io(String, errno: Int32)
    case codec(String)

    /// The protocol code to send in an ERROR frame for this local failure.
    public var code: WireErrorCode {
        switch self {
        case .truncated: return .truncated
        case .badMagic: return .badMagic
        case .unsupportedVersion: return .unsupportedVersion
        case .badHeaderChecksum: return .badHeaderChecksum
        case .badPayloadChecksum: return .badPayloadChecksum
        case .frameTooLarge: return .frameTooLarge
        case .unknownType: return .unknownType
        case .badFlags: return .badFlags
        case .malformed, .codec: return .malformedPayload
        case .unexpectedMessage: return .unexpectedMessage
        case .authFailed: return .authFailed
        case .fingerprintMismatch: return .fingerprintMismatch
        case .peer(let c, _): return WireErrorCode(rawValue: c) ?? .internalError
        case .timeout: return .timeout
        case .closed, .io: return .internalError
        }
    }

    public var description: String {
        switch self {
        case let .truncated(e, g): return "truncated frame: expected \(e) bytes, got \(g)"
        case let .badMagic(m): return "bad magic 0x\(String(m, radix: 16)) (expected \"MOEW\")"
        case let .unsupportedVersion(v): return "unsupported protocol version \(v) (this build speaks \(Frame.version))"
        case let .badHeaderChecksum(e, g):
            return "header checksum mismatch (CRC32C expected 0x\(String(e, radix: 16)), got 0x\(String(g, radix: 16)))"
        case let .badPayloadChecksum(e, g):
            return "payload checksum mismatch (CRC32C expected 0x\(String(e, radix: 16)), got 0x\(String(g, radix: 16)))"
        case let .frameTooLarge(l, lim): return "frame payload of \(l) bytes exceeds the limit of \(lim) bytes"
        case let .unknownType(t): return "unknown message type \(t)"
        case let .badFlags(f): return "reserved flags set (0x\(String(f, radix: 16)))"
        case let .malformed(f, r): return "malformed payload field '\(f)': \(r)"
        case let .unexpectedMessage(g, e): return "unexpected message \(g), expected \(e)"
        case let .authFailed(s): return "authentication failed: \(s)"
        case let .fingerprintMismatch(s): return "model fingerprint mismatch: \(s)"
        case let .peer(c, t):
            let name = WireErrorCode(rawValue: c).map { "\($0)" } ?? "code \(c)"
            return "peer error \(name): \(t)"
        case let .timeout(s): return "timeout: \(s)"
        case .closed: return "connection closed by peer"
        case let .io(s, e): return e > 0 ? "\(s): \(String(cString: strerror(e))) (errno \(e))" : s
        case let .codec(s): return "codec: \(s)"
        }
    }
}
