// Message bodies (docs/protocol.md §3). Each type encodes into a WireBuffer and decodes from a WireReader with
// every field bounds-checked. EXPERT and EXPERT_RESULT carry shards and live in ExpertMessages.swift.

public protocol WireMessage {
    static var messageType: MessageType { get }
    func encode(into buffer: WireBuffer) throws
    init(from reader: inout WireReader) throws
}

/// 32 bytes identifying the model (config + weights); all zero means "don't care" in HELLO.
public struct ModelFingerprint: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var bytes: [UInt8]
    public init(bytes: [UInt8]) {
        precondition(bytes.count == 32, "a model fingerprint is 32 bytes")
        self.bytes = bytes
    }
    public static let none = ModelFingerprint(bytes: [UInt8](repeating: 0, count: 32))
    public var isNone: Bool { bytes.allSatisfy { $0 == 0 } }
    public var description: String { bytes.prefix(8).map { String(format2: $0) }.joined() + "…" }
}

extension String {
    init(format2 b: UInt8) {
        let d = Array("0123456789abcdef")
        self = String([d[Int(b >> 4)], d[Int(b & 15)]])
    }
}

extension WireReader {
    mutating func bytes32(_ field: StaticString) throws -> [UInt8] { try byteArray(32, field) }
}

func appendBytes32(_ b: [UInt8], to buffer: WireBuffer, field: StaticString) throws {
    guard b.count == 32 else { throw WireError.malformed(field: "\(field)", reason: "must be 32 bytes, is \(b.count)") }
    buffer.append(bytes: b)
}

/// Where a worker's threads and weights live (docs/protocol.md §3, NUMA report).
public struct NUMAReport: Equatable, Sendable {
    /// Node the worker was asked to bind to; −1 = not bound.
    public var requestedNode: Int32
    /// Node of the CPU the reporting thread ran on.
    public var cpuNode: Int32
    /// Node of the first weight page; −1 = unknown.
    public var pageNode: Int32
    /// Both `cpuNode` and `pageNode` equal `requestedNode`.
    public var verified: Bool
    public init(requestedNode: Int32, cpuNode: Int32, pageNode: Int32, verified: Bool) {
        self.requestedNode = requestedNode; self.cpuNode = cpuNode; self.pageNode = pageNode; self.verified = verified
    }
    public static let unbound = NUMAReport(requestedNode: -1, cpuNode: -1, pageNode: -1, verified: false)

    func encode(into b: WireBuffer) {
        b.append(requestedNode); b.append(cpuNode); b.append(pageNode); b.append(UInt8(verified ? 1 : 0))
    }
    init(from r: inout WireReader) throws {
        requestedNode = try r.read(Int32.self, "numa.requestedNode")
        cpuNode = try r.read(Int32.self, "numa.cpuNode")
        pageNode = try r.read(Int32.self, "numa.pageNode")
        let v = try r.read(UInt8.self, "numa.verified")
        guard v <= 1 else { throw WireError.malformed(field: "numa.verified", reason: "must be 0 or 1, is \(v)") }
        verified = v == 1
    }
}

public struct Hello: WireMessage, Equatable {
    public static let messageType = MessageType.hello
    public var protocolVersion: UInt16
    public var nonce: [UInt8]
    public var fingerprint: ModelFingerprint
    public var peerName: String
    public init(protocolVersion: UInt16 = Frame.version, nonce: [UInt8], fingerprint: ModelFingerprint, peerName: String) {
        self.protocolVersion = protocolVersion; self.nonce = nonce; self.fingerprint = fingerprint; self.peerName = peerName
    }
    public func encode(into b: WireBuffer) throws {
        b.append(protocolVersion)
        try appendBytes32(nonce, to: b, field: "hello.nonce")
        try appendBytes32(fingerprint.bytes, to: b, field: "hello.fingerprint")
        try b.append(string: peerName)
    }
    public init(from r: inout WireReader) throws {
        protocolVersion = try r.read(UInt16.self, "hello.protocolVersion")
        nonce = try r.bytes32("hello.nonce")
        fingerprint = ModelFingerprint(bytes: try r.bytes32("hello.fingerprint"))
        peerName = try r.string("hello.peerName")
        try r.finish("HELLO")
    }
}

public struct Welcome: WireMessage, Equatable {
    public static let messageType = MessageType.welcome
    public var protocolVersion: UInt16
    public var nonce: [UInt8]
    public var fingerprint: ModelFingerprint
    public var workerName: String
    public var numa: NUMAReport
    public var experts: [UInt32]
    public var proof: [UInt8]
    public init(protocolVersion: UInt16 = Frame.version, nonce: [UInt8], fingerprint: ModelFingerprint,
                workerName: String, numa: NUMAReport, experts: [UInt32], proof: [UInt8]) {
        self.protocolVersion = protocolVersion; self.nonce = nonce; self.fingerprint = fingerprint
        self.workerName = workerName; self.numa = numa; self.experts = experts; self.proof = proof
    }
    public func encode(into b: WireBuffer) throws {
        b.append(protocolVersion)
        try appendBytes32(nonce, to: b, field: "welcome.nonce")
        try appendBytes32(fingerprint.bytes, to: b, field: "welcome.fingerprint")
        try b.append(string: workerName)
        numa.encode(into: b)
        b.append(UInt32(experts.count))
        for e in experts { b.append(e) }
        try appendBytes32(proof, to: b, field: "welcome.proof")
    }
    public init(from r: inout WireReader) throws {
        protocolVersion = try r.read(UInt16.self, "welcome.protocolVersion")
        nonce = try r.bytes32("welcome.nonce")
        fingerprint = ModelFingerprint(bytes: try r.bytes32("welcome.fingerprint"))
        workerName = try r.string("welcome.workerName")
        numa = try NUMAReport(from: &r)
        let n = try r.listCount("welcome.experts", elementSize: 4)
        experts = []
        experts.reserveCapacity(n)
        for _ in 0..<n { experts.append(try r.read(UInt32.self, "welcome.experts")) }
        proof = try r.bytes32("welcome.proof")
        try r.finish("WELCOME")
    }
}

public struct Auth: WireMessage, Equatable {
    public static let messageType = MessageType.auth
    public var proof: [UInt8]
    public init(proof: [UInt8]) { self.proof = proof }
    public func encode(into b: WireBuffer) throws { try appendBytes32(proof, to: b, field: "auth.proof") }
    public init(from r: inout WireReader) throws {
        proof = try r.bytes32("auth.proof")
        try r.finish("AUTH")
    }
}

/// A message with an empty body.
public protocol EmptyWireMessage: WireMessage { init() }
extension EmptyWireMessage {
    public func encode(into b: WireBuffer) throws {}
    public init(from r: inout WireReader) throws {
        try r.finish("empty message")
        self.init()
    }
}

public struct Ready: EmptyWireMessage, Equatable {
    public static let messageType = MessageType.ready
    public init() {}
}
public struct StatsRequest: EmptyWireMessage, Equatable {
    public static let messageType = MessageType.stats
    public init() {}
}
public struct Shutdown: EmptyWireMessage, Equatable {
    public static let messageType = MessageType.shutdown
    public init() {}
}

public struct ErrorMessage: WireMessage, Equatable {
    public static let messageType = MessageType.error
    public var code: UInt16
    public var text: String
    public init(code: WireErrorCode, text: String) { self.code = code.rawValue; self.text = text }
    public init(rawCode: UInt16, text: String) { self.code = rawCode; self.text = text }
    public func encode(into b: WireBuffer) throws {
        b.append(code)
        // Truncate long texts at a character boundary so an ERROR can always be sent.
        var t = text
        while t.utf8.count > WireLimits.maxString { t.removeLast() }
        try b.append(string: t)
    }
    public init(from r: inout WireReader) throws {
        code = try r.read(UInt16.self, "error.code")
        text = try r.string("error.text")
        try r.finish("ERROR")
    }
}

public struct Ping: WireMessage, Equatable {
    public static let messageType = MessageType.ping
    public var data: [UInt8]
    public init(data: [UInt8]) { self.data = data }
    public func encode(into b: WireBuffer) throws { b.append(bytes: data) }
    public init(from r: inout WireReader) throws { data = try r.byteArray(r.remaining, "ping.data") }
}

public struct Pong: WireMessage, Equatable {
    public static let messageType = MessageType.pong
    public var data: [UInt8]
    public init(data: [UInt8]) { self.data = data }
    public func encode(into b: WireBuffer) throws { b.append(bytes: data) }
    public init(from r: inout WireReader) throws { data = try r.byteArray(r.remaining, "pong.data") }
}

public struct ExpertStat: Equatable, Sendable {
    public var expert: UInt32
    public var requests: UInt64
    public var rows: UInt64
    public var computeNanos: UInt64
    public init(expert: UInt32, requests: UInt64, rows: UInt64, computeNanos: UInt64) {
        self.expert = expert; self.requests = requests; self.rows = rows; self.computeNanos = computeNanos
    }
}

public struct StatsReply: WireMessage, Equatable {
    public static let messageType = MessageType.statsReply
    public var workerName: String
    public var numa: NUMAReport
    public var uptimeNanos: UInt64
    public var bytesIn: UInt64
    public var bytesOut: UInt64
    public var connections: UInt32
    public var experts: [ExpertStat]
    public init(workerName: String, numa: NUMAReport, uptimeNanos: UInt64, bytesIn: UInt64, bytesOut: UInt64,
                connections: UInt32, experts: [ExpertStat]) {
        self.workerName = workerName; self.numa = numa; self.uptimeNanos = uptimeNanos; self.bytesIn = bytesIn
        self.bytesOut = bytesOut; self.connections = connections; self.experts = experts
    }
    public func encode(into b: WireBuffer) throws {
        try b.append(string: workerName)
        numa.encode(into: b)
        b.append(uptimeNanos); b.append(bytesIn); b.append(bytesOut); b.append(connections)
        b.append(UInt32(experts.count))
        for e in experts { b.append(e.expert); b.append(e.requests); b.append(e.rows); b.append(e.computeNanos) }
    }
    public init(from r: inout WireReader) throws {
        workerName = try r.string("stats.workerName")
        numa = try NUMAReport(from: &r)
        uptimeNanos = try r.read(UInt64.self, "stats.uptimeNanos")
        bytesIn = try r.read(UInt64.self, "stats.bytesIn")
        bytesOut = try r.read(UInt64.self, "stats.bytesOut")
        connections = try r.read(UInt32.self, "stats.connections")
        let n = try r.listCount("stats.experts", elementSize: 28)
        experts = []
        experts.reserveCapacity(n)
        for _ in 0..<n {
            experts.append(ExpertStat(expert: try r.read(UInt32.self, "stats.expert"),
                                      requests: try r.read(UInt64.self, "stats.requests"),
                                      rows: try r.read(UInt64.self, "stats.rows"),
                                      computeNanos: try r.read(UInt64.self, "stats.computeNanos")))
        }
        try r.finish("STATS_REPLY")
    }
}
