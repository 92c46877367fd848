// EXPERT and EXPERT_RESULT payloads (docs/protocol.md §3.1). Shards are encoded straight into the frame buffer
// and decoded as views into the received payload: no per-message allocation once the buffers have grown.

public struct ExpertGroup: Equatable, Sendable {
    public var expert: UInt32
    public var rows: UInt32
    public init(expert: UInt32, rows: UInt32) { self.expert = expert; self.rows = rows }
}

public struct ExpertRequestView {
    public var layer: Int
    public var dim: Int
    public var totalRows: Int
    /// `totalRows × dim` values, rows grouped as in `groups`.
    public var activations: ShardView
    /// `totalRows` gate weights (F32, raw).
    public var gate: ShardView
}

public struct ExpertResultView {
    public var layer: Int
    public var dim: Int
    public var totalRows: Int
    public var computeNanos: UInt64
    /// Worker time spent decoding the request's shards and encoding this result.
    public var codecNanos: UInt64
    /// `totalRows × dim` values: gate · expert(input).
    public var output: ShardView
}

public enum ExpertMessage {
    public static let maxDim = 1 << 16

    static func encodeHead(_ b: WireBuffer, layer: Int, dim: Int, groups: [ExpertGroup]) throws -> Int {
        guard layer >= 0, layer <= Int(UInt32.max), dim > 0, dim <= maxDim else {
            throw WireError.malformed(field: "expert.head", reason: "layer \(layer), dim \(dim) out of range")
        }
        b.append(UInt32(layer)); b.append(UInt32(dim))
        b.append(UInt32(groups.count))
        var rows = 0
        for g in groups { b.append(g.expert); b.append(g.rows); rows += Int(g.rows) }
        return rows
    }

    static func decodeHead(_ r: inout WireReader, groups: inout [ExpertGroup], limits: WireLimits,
                           prefix: StaticString) throws -> (layer: Int, dim: Int, rows: Int) {
        let layer = Int(try r.read(UInt32.self, "expert.layer"))
        let dim = Int(try r.read(UInt32.self, "expert.dim"))
        guard dim > 0, dim <= maxDim else {
            throw WireError.malformed(field: "\(prefix).dim", reason: "\(dim) outside 1...\(maxDim)")
        }
        let n = try r.listCount("expert.groups", elementSize: 8)
        groups.removeAll(keepingCapacity: true)
        var rows = 0
        for _ in 0..<n {
            let g = ExpertGroup(expert: try r.read(UInt32.self, "expert.groups.expert"),
                                rows: try r.read(UInt32.self, "expert.groups.rows"))
            rows += Int(g.rows)
            groups.append(g)
        }
        let (elements, overflow) = rows.multipliedReportingOverflow(by: dim)
        let limit = min(limits.maxPayload, limits.maxDecodedBytes) / 4
        guard !overflow, elements <= limit else {
            throw WireError.malformed(field: "\(prefix).groups",
                                      reason: "\(rows) rows × \(dim) values decode to \(overflow ? "more than 2^63" : "\(elements * 4)") bytes, "
                                          + "above the limit of \(limit * 4) bytes (WireLimits.maxDecodedBytes)")
        }
        return (layer, dim, rows)
    }

    /// Writes an EXPERT payload: rows of `groups` (in order) from `activations` (`Σrows × dim`) and `gate` (`Σrows`).
    @discardableResult
    public static func encodeRequest(into b: WireBuffer, layer: Int, dim: Int, groups: [ExpertGroup],
                                     activations: UnsafePointer<Float>, gate: UnsafePointer<Float>,
                                     codec: ShardCodec, options: ShardOptions) throws -> ShardEncodeInfo {
        let rows = try encodeHead(b, layer: layer, dim: dim, groups: groups)
        let info = try codec.encode(activations, count: rows * dim, options: options, into: b)
        try codec.encode(gate, count: rows, options: .raw, into: b)
        return info
    }

    public static func decodeRequest(_ payload: UnsafeRawBufferPointer, groups: inout [ExpertGroup],
                                     limits: WireLimits = .default) throws -> ExpertRequestView {
        var r = WireReader(payload)
        let h = try decodeHead(&r, groups: &groups, limits: limits, prefix: "expert")
        let act = try ShardView.read(from: &r, expectedCount: h.rows * h.dim, field: "expert.activations")
        let gate = try ShardView.read(from: &r, expectedCount: h.rows, field: "expert.gate")
        guard gate.dtype == .f32, !gate.compressed, !gate.shuffle else {
            throw WireError.malformed(field: "expert.gate", reason: "gate weights must be raw F32")
        }
        try r.finish("EXPERT")
        return ExpertRequestView(layer: h.layer, dim: h.dim, totalRows: h.rows, activations: act, gate: gate)
    }

    /// Writes an EXPERT_RESULT payload.
    @discardableResult
    public static func encodeResult(into b: WireBuffer, layer: Int, dim: Int, groups: [ExpertGroup],
                                    computeNanos: UInt64, codecNanos: UInt64 = 0, output: UnsafePointer<Float>,
                                    codec: ShardCodec, options: ShardOptions) throws -> ShardEncodeInfo {
        let rows = try encodeHead(b, layer: layer, dim: dim, groups: groups)
        b.append(computeNanos)
        let codecAt = b.count
        b.append(codecNanos)
        let info = try codec.encode(output, count: rows * dim, options: options, into: b)
        // Include this encode in the reported codec time.
        (b.base + codecAt).storeBytes(of: (codecNanos &+ info.nanos).littleEndian, as: UInt64.self)
        return info
    }

    public static func decodeResult(_ payload: UnsafeRawBufferPointer, groups: inout [ExpertGroup],
                                    limits: WireLimits = .default) throws -> ExpertResultView {
        var r = WireReader(payload)
        let h = try decodeHead(&r, groups: &groups, limits: limits, prefix: "expertResult")
        let nanos = try r.read(UInt64.self, "expertResult.computeNanos")
        let codecNanos = try r.read(UInt64.self, "expertResult.codecNanos")
        let out = try ShardView.read(from: &r, expectedCount: h.rows * h.dim, field: "expertResult.output")
        try r.finish("EXPERT_RESULT")
        return ExpertResultView(layer: h.layer, dim: h.dim, totalRows: h.rows, computeNanos: nanos, codecNanos: codecNanos, output: out)
    }
}
