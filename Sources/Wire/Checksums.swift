// Checksums of the wire format (docs/protocol.md §1): CRC32C for the 32-byte header, XXH64 for payloads.
// Both are plain Swift; reference vectors come from tools/wire_vectors.py (libxxhash and a bitwise CRC32C).

/// CRC32C (Castagnoli): reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF.
/// Slicing-by-8: eight 256-entry tables, eight input bytes per step.
public enum CRC32C {
    /// `tables[k * 256 + b]`: CRC contribution of byte `b` followed by `k` zero bytes.
    static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for b in 0..<256 {
            var c = UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[b] = c
        }
        for k in 1..<8 {
            for b in 0..<256 {
                let prev = t[(k - 1) * 256 + b]
                t[k * 256 + b] = (prev >> 8) ^ t[Int(prev & 0xFF)]
            }
        }
        return t
    }()

    /// Continues a CRC: pass the previous result as `crc` (0 to start).
    public static func checksum(_ data: UnsafeRawBufferPointer, crc: UInt32 = 0) -> UInt32 {
        guard let base = data.baseAddress, data.count > 0 else { return crc }
        return tables.withUnsafeBufferPointer { tp -> UInt32 in
            let t = tp.baseAddress!
            var c = ~crc
            var p = base
            var n = data.count
            while n >= 8 {
                let lo = UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)) ^ c
                let hi = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
                c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                  ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                  ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                  ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                p += 8; n -= 8
            }
            while n > 0 {
                c = (c >> 8) ^ t[Int((c ^ UInt32(p.load(as: UInt8.self))) & 0xFF)]
                p += 1; n -= 1
            }
            return ~c
        }
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }
}

/// XXH64 (Yann Collet's xxHash, 64-bit variant), one-shot.
public enum XXH64 {
    static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    @inline(__always) static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 &- r)) }
    @inline(__always) static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        rotl(acc &+ input &* p2, 31) &* p1
    }
    @inline(__always) static func merge(_ acc: UInt64, _ val: UInt64) -> UInt64 {
        (acc ^ round(0, val)) &* p1 &+ p4
    }
    @inline(__always) static func load64(_ p: UnsafeRawPointer, _ o: Int) -> UInt64 {
        UInt64(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt64.self))
    }

    public static func hash(_ data: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        guard let base = data.baseAddress, data.count > 0 else {
            return XXH64Stream(seed: seed).finish(UnsafeRawPointer(bitPattern: 8)!, length: 0)
        }
        var s = XXH64Stream(seed: seed)
        s.consume(base, upTo: data.count)
        return s.finish(base, length: data.count)
    }

    public static func hash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        bytes.withUnsafeBytes { hash($0, seed: seed) }
    }
}

/// XXH64 over a message that arrives progressively into one contiguous buffer: `consume` hashes the complete
/// 32-byte stripes received so far, `finish` the rest. Same result as `XXH64.hash` of the whole message.
public struct XXH64Stream {
    var v1: UInt64, v2: UInt64, v3: UInt64, v4: UInt64
    let seed: UInt64
    /// Bytes from the message start already folded into the lanes (a multiple of 32).
    public private(set) var consumed = 0

    public init(seed: UInt64 = 0) {
        self.seed = seed
        v1 = seed &+ XXH64.p1 &+ XXH64.p2; v2 = seed &+ XXH64.p2; v3 = seed; v4 = seed &- XXH64.p1
    }

    /// Folds the stripes of `base[consumed ..< available]` (whole stripes only). `base` is the message start.
    @inline(__always) public mutating func consume(_ base: UnsafeRawPointer, upTo available: Int) {
        let end = available & ~31
        guard end > consumed else { return }
        var p = base + consumed
        let stop = base + end
        var a = v1, b = v2, c = v3, d = v4
        while p < stop {
            a = XXH64.round(a, XXH64.load64(p, 0)); b = XXH64.round(b, XXH64.load64(p, 8))
            c = XXH64.round(c, XXH64.load64(p, 16)); d = XXH64.round(d, XXH64.load64(p, 24))
            p += 32
        }
        v1 = a; v2 = b; v3 = c; v4 = d
        consumed = end
    }

    /// The hash of the `length`-byte message at `base` (everything up to `length` must be present).
    public func finish(_ base: UnsafeRawPointer, length len: Int) -> UInt64 {
        var s = self
        if len >= 32 { s.consume(base, upTo: len) }
        var h: UInt64
        if len >= 32 {
            h = XXH64.rotl(s.v1, 1) &+ XXH64.rotl(s.v2, 7) &+ XXH64.rotl(s.v3, 12) &+ XXH64.rotl(s.v4, 18)
            h = XXH64.merge(h, s.v1); h = XXH64.merge(h, s.v2); h = XXH64.merge(h, s.v3); h = XXH64.merge(h, s.v4)
        } else {
            h = seed &+ XXH64.p5
        }
        h = h &+ UInt64(len)
        var p = base + s.consumed
        var n = len - s.consumed
        while n >= 8 {
            h ^= XXH64.round(0, XXH64.load64(p, 0))
            h = XXH64.rotl(h, 27) &* XXH64.p1 &+ XXH64.p4
            p += 8; n -= 8
        }
        if n >= 4 {
            h ^= UInt64(UInt32(littleEndian: p.loadUnaligned(as: UInt32.self))) &* XXH64.p1
            h = XXH64.rotl(h, 23) &* XXH64.p2 &+ XXH64.p3
            p += 4; n -= 4
        }
        while n > 0 {
            h ^= UInt64(p.load(as: UInt8.self)) &* XXH64.p5
            h = XXH64.rotl(h, 11) &* XXH64.p1
            p += 1; n -= 1
        }
        h ^= h >> 33; h = h &* XXH64.p2
        h ^= h >> 29; h = h &* XXH64.p3
        h ^= h >> 32
        return h
    }
}
