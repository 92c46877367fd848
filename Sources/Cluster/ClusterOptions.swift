// What the coordinator is configured with (ClusterOptions) and what it reports about a run (ClusterTiming,
// Failover).

import DiT
import Tensor
import Wire

public struct ClusterOptions {
    public var secret: WireSecret
    /// The model identity the workers must serve (`ModelFingerprint(serving: weights)`: weights and precision).
    public var fingerprint: ModelFingerprint
    public var codec: ShardOptions
    /// Deadline of a connect plus handshake, in seconds.
    public var connectTimeout: Double
    /// Deadline of one EXPERT round trip, in seconds, when no other live worker hosts the request's experts.
    public var requestTimeout: Double
    /// Deadline of one EXPERT round trip, in seconds, when every expert of the request has another live replica
    /// (so giving up early costs nothing but a retry there). The deadline used is
    /// `min(requestTimeout, max(failoverTimeout, failoverRoundTrips × the worker's recent round trip))`.
    public var failoverTimeout: Double
    /// See `failoverTimeout`: a worker is only abandoned once it is this many of its own recent round trips late.
    public var failoverRoundTrips: Double
    /// The smallest piece of an expert's rows the coordinator cuts off for a replica (see `RowSplitter`).
    public var minimumSplitRows: Int
    public var name: String
    public var limits: WireLimits
    /// Seconds after a worker is marked dead before the first reconnect attempt; each failed attempt doubles
    /// the wait, up to `maxReconnectBackoff`. Attempts run on the worker's own thread, beside the forward.
    public var reconnectBackoff: Double
    public var maxReconnectBackoff: Double

    public init(secret: WireSecret, fingerprint: ModelFingerprint, codec: ShardOptions = .default,
                connectTimeout: Double = 5, requestTimeout: Double = 30, failoverTimeout: Double = 1,
                failoverRoundTrips: Double = 10, minimumSplitRows: Int = RowSplitter.minimumPieceRows,
                name: String = "coordinator",
                limits: WireLimits = .default, reconnectBackoff: Double = 1, maxReconnectBackoff: Double = 30) {
        self.secret = secret; self.fingerprint = fingerprint; self.codec = codec; self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout; self.failoverTimeout = failoverTimeout
        self.failoverRoundTrips = failoverRoundTrips; self.minimumSplitRows = minimumSplitRows; self.name = name; self.limits = limits
        self.reconnectBackoff = reconnectBackoff; self.maxReconnectBackoff = maxReconnectBackoff
    }
}

/// One worker abandoned in the middle of `execute`: its request failed or passed its deadline, and its rows were
/// sent again to live replicas.
public struct Failover: Sendable, Equatable, CustomStringConvertible {
    public var worker: String
    public var endpoint: String
    public var layer: Int
    /// Routed rows (token × slot) that were sent again elsewhere.
    public var rows: Int
    /// Time from sending the request to giving it up, in seconds.
    public var after: Double
    public var reason: String

    public var description: String {
        "worker \(worker) at \(endpoint) abandoned in layer \(layer) after \(String(format: "%.3f", after)) s "
            + "(\(reason)); \(rows) rows went to live replicas"
    }
}

/// Where a layer's routed-expert time went, along the critical path (the worker that finished last), summed over
/// calls. compute + codec + transfer + waiting = wall time of `execute`.
public struct ClusterTiming: Sendable, Equatable {
    /// Worker time inside the expert GEMMs.
    public var computeNanos: UInt64 = 0
    /// Coordinator gather/encode/decode/scatter plus the worker's decode/encode.
    public var codecNanos: UInt64 = 0
    /// Round trip minus the worker's compute and codec time: the network and the kernels.
    public var transferNanos: UInt64 = 0
    /// The rest of the wall time: dispatch, waiting for the slowest worker, retries.
    public var waitingNanos: UInt64 = 0
    public var layers = 0
    public var bytesSent: UInt64 = 0
    public var bytesReceived: UInt64 = 0
    /// Requests that failed (error, disconnect or deadline) and were sent again.
    public var retries = 0
    /// Dead workers brought back by a reconnect.
    public var reconnects = 0
    /// Experts whose rows were split between two or more workers, summed over layers.
    public var splitExperts = 0
    /// The first `Self.maxFailoversKept` fail-overs (`retries` counts them all).
    public var failovers: [Failover] = []
    public static let maxFailoversKept = 16
    public init() {}
    public var totalNanos: UInt64 { computeNanos + codecNanos + transferNanos + waitingNanos }
}

extension ModelFingerprint {
    /// What a worker serving `weights` announces and a coordinator running `weights` expects: the weights'
    /// identity and, unless FP32, the GEMM precision (a worker computing in another precision than the
    /// coordinator would change the output, so it must not pass the handshake).
    public init(serving weights: DiTWeights) {
        self.init(serving: weights.fingerprint, precision: weights.precision)
    }

    /// The same from `DiTWeights.fingerprint` and the precision the weights are (or would be) loaded in.
    public init(serving weightsFingerprint: String, precision: ComputePrecision) {
        self.init(hashing: precision == .fp32 ? weightsFingerprint : weightsFingerprint + " precision=\(precision.rawValue)")
    }
}
