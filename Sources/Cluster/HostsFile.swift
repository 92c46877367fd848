// The `hosts` file: one expert worker a line (README "Cluster"; format in docs/cluster.md §1).
//
//     # name  address     port  numa  experts
//     w0      127.0.0.1   7101  0     0-3
//     w1      127.0.0.1   7102  0     4-7,0      # expert 0 also here: a replica
//
// Lines end in LF or CRLF. Fields are separated by spaces or tabs; `#` starts a comment. Expert lists are
// comma-separated ids or inclusive ranges `a-b`. Names are unique, and so are listening endpoints: two lines whose
// addresses resolve to a common address (or where one is a wildcard address) must use different ports, since
// only one worker can listen there and it would answer for both. The NUMA node is checked by the worker that
// binds to it (NUMA.bind), since only that machine knows its nodes.

import Foundation

public struct HostsFileError: Error, Equatable, CustomStringConvertible {
    public var path: String
    /// 1-based line, nil for whole-file problems.
    public var line: Int?
    public var message: String
    public var description: String { line.map { "\(path):\($0): \(message)" } ?? "\(path): \(message)" }
}

public struct HostEntry: Equatable, Sendable {
    public var name: String
    public var address: String
    public var port: Int
    public var numaNode: Int
    /// Ascending, without duplicates.
    public var experts: [Int]
    /// 1-based line in the hosts file.
    public var line: Int
    public var endpoint: String { "\(address):\(port)" }

    public init(name: String, address: String, port: Int, numaNode: Int, experts: [Int], line: Int = 0) {
        self.name = name; self.address = address; self.port = port; self.numaNode = numaNode
        self.experts = experts; self.line = line
    }
}

public struct HostsFile: Equatable, Sendable {
    public var path: String
    public var entries: [HostEntry]

    public init(path: String = "hosts", entries: [HostEntry]) { self.path = path; self.entries = entries }

    public static func load(path: String) throws -> HostsFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw HostsFileError(path: path, line: nil, message: "cannot read the hosts file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw HostsFileError(path: path, line: nil, message: "not UTF-8 text")
        }
        return try parse(text, path: path)
    }

    /// `resolve` maps an address field to the numeric addresses it stands for (nil when it does not resolve here;
    /// the text itself is then compared). The default asks the system resolver.
    public static func parse(_ text: String, path: String = "hosts",
                             resolve: (String) -> [String]? = HostsFile.systemAddresses) throws -> HostsFile {
        var entries: [HostEntry] = []
        var names: [String: Int] = [:]
        /// Numeric address → (line, spelled address), per port.
        var listening: [Int: [(address: String, line: Int, spelled: String)]] = [:]
        // "\r\n" is one Character in Swift: splitting on "\n" alone would not split CRLF lines.
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        for (i, rawLine) in lines.enumerated() {
            let lineNo = i + 1
            func fail(_ m: String) -> HostsFileError { HostsFileError(path: path, line: lineNo, message: m) }
            var line = Substring(rawLine)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            if fields.isEmpty { continue }
            guard fields.count == 5 else {
                throw fail("expected 5 fields 'name address port numa-node experts', found \(fields.count)")
            }
            let name = fields[0]
            guard name.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0) }),
                  name.utf8.count <= 64 else {
                throw fail("worker name '\(name)' may use only letters, digits, '-', '_' and '.' (at most 64)")
            }
            guard let port = Int(fields[2]), (1...65535).contains(port) else {
                throw fail("port '\(fields[2])' is not an integer in 1...65535")
            }
            guard let node = Int(fields[3]), node >= 0, node < 1024 else {
                throw fail("NUMA node '\(fields[3])' is not a non-negative integer")
            }
            let experts: [Int]
            do { experts = try parseExpertList(fields[4]) } catch let e as ExpertListError {
                throw fail("experts '\(fields[4])': \(e.message)")
            }
            if let first = names[name] { throw fail("duplicate worker name '\(name)' (first on line \(first))") }
            let spelled = fields[1]
            let numeric = resolve(spelled).flatMap { $0.isEmpty ? nil : $0 } ?? [spelled.lowercased()]
            for a in numeric {
                for other in listening[port] ?? [] where other.address == a || isWildcard(a) || isWildcard(other.address) {
                    if other.spelled == spelled {
                        throw fail("duplicate address \(spelled):\(port) (first on line \(other.line))")
                    }
                    let via = other.address == a ? "both resolve to \(a)" : "a wildcard address covers the other"
                    throw fail("address \(spelled):\(port) is the same listening endpoint as \(other.spelled):\(port) on line "
                               + "\(other.line) (\(via)); lines \(other.line) and \(lineNo) need different ports")
                }
            }
            names[name] = lineNo
            listening[port, default: []] += Set(numeric).map { ($0, lineNo, spelled) }
            entries.append(HostEntry(name: name, address: fields[1], port: port, numaNode: node, experts: experts, line: lineNo))
        }
        guard !entries.isEmpty else { throw HostsFileError(path: path, line: nil, message: "no workers listed") }
        return HostsFile(path: path, entries: entries)
    }

    /// The numeric addresses (`127.0.0.1`, `::1`) the system resolver gives for `host`; nil if it gives none.
    public static func systemAddresses(_ host: String) -> [String]? {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &res) == 0, let first = res else { return nil }
        defer { freeaddrinfo(first) }
        var out: [String] = []
        var p: UnsafeMutablePointer<addrinfo>? = first
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        while let a = p {
            if a.pointee.ai_family == AF_INET {
                a.pointee.ai_addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var addr = sin.pointee.sin_addr
                    inet_ntop(AF_INET, &addr, &buf, socklen_t(buf.count))
                }
                out.append(String(cString: buf))
            } else if a.pointee.ai_family == AF_INET6 {
                a.pointee.ai_addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin in
                    var addr = sin.pointee.sin6_addr
                    inet_ntop(AF_INET6, &addr, &buf, socklen_t(buf.count))
                }
                out.append(String(cString: buf))
            }
            p = a.pointee.ai_next
        }
        return out.isEmpty ? nil : out
    }

    /// `0.0.0.0` and `::` listen on every address of the machine.
    static func isWildcard(_ numeric: String) -> Bool { numeric == "0.0.0.0" || numeric == "::" }

    /// Checks the file against a model with `expertCount` experts: ids in range, every expert hosted somewhere.
    public func validate(expertCount: Int) throws {
        for e in entries {
            if let bad = e.experts.first(where: { $0 >= expertCount }) {
                throw HostsFileError(path: path, line: e.line,
                                     message: "worker \(e.name) lists expert \(bad), but the model has \(expertCount) experts (0...\(expertCount - 1))")
            }
        }
        let hosted = Set(entries.flatMap(\.experts))
        let missing = (0..<expertCount).filter { !hosted.contains($0) }
        if !missing.isEmpty {
            throw HostsFileError(path: path, line: nil,
                                 message: "experts nobody hosts: \(formatExpertList(missing)) (model has \(expertCount) experts)")
        }
    }

    /// Indices of the entries hosting `expert`.
    public func owners(of expert: Int) -> [Int] {
        entries.indices.filter { entries[$0].experts.contains(expert) }
    }
}

public struct ExpertListError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Parses `0-3,6` into [0, 1, 2, 3, 6] (sorted, duplicates removed).
public func parseExpertList(_ s: String) throws -> [Int] {
    var out = Set<Int>()
    for part in s.split(separator: ",", omittingEmptySubsequences: false) {
        let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(bounds.count), let a = Int(bounds[0]), let b = Int(bounds[bounds.count - 1]),
              a >= 0 else {
            throw ExpertListError(message: "'\(part)' is not an expert id or a range like 0-3")
        }
        guard a <= b else { throw ExpertListError(message: "range '\(part)' runs backwards") }
        guard b < 1 << 20 else { throw ExpertListError(message: "expert id \(b) is too large") }
        for e in a...b { out.insert(e) }
    }
    return out.sorted()
}

/// Formats [0, 1, 2, 3, 6] as "0-3,6".
public func formatExpertList(_ experts: [Int]) -> String {
    let s = experts.sorted()
    var parts: [String] = []
    var i = 0
    while i < s.count {
        var j = i
        while j + 1 < s.count && s[j + 1] == s[j] + 1 { j += 1 }
        parts.append(i == j ? "\(s[i])" : "\(s[i])-\(s[j])")
        i = j + 1
    }
    return parts.joined(separator: ",")
}
