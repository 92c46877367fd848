import Foundation

/// Wall time of a forward pass split by phase, accumulated over calls (nanoseconds). Timed per layer, never per
/// token. Phases owned by the cluster (codec, transfer, waiting) are added by its executor.
public struct PhaseProfile: Sendable, Codable {
    public enum Phase: String, CaseIterable, Codable, Sendable {
        case embed, adaLN = "adaln", attention, gate, routedExperts = "routed_experts", sharedExpert = "shared_expert"
        case denseMLP = "dense_mlp", combine, final, codec, transfer, waiting
    }
    public var nanoseconds: [Phase: UInt64] = [:]
    public var forwards = 0

    public init() {}

    public mutating func add(_ phase: Phase, _ ns: UInt64) { nanoseconds[phase, default: 0] += ns }
    public var totalNanoseconds: UInt64 { nanoseconds.values.reduce(0, +) }

    @inlinable public static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
}
