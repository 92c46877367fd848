// DEFLATE decompression (RFC 1951) and the zlib wrapper (RFC 1950): what `np.savez_compressed` entries and PNG image
// data are stored with. Written here because the system libraries are fixed (no zlib).
//
// Bits are read LSB-first from a 64-bit buffer; Huffman codes (MSB-first by definition) are decoded through one
// table per code indexed by the next `maxLength` input bits, so a symbol costs one lookup. Every malformed stream is
// an error, never a trap: bad block type, stored length ≠ ~NLEN, over-subscribed or empty codes, a repeat without a
// previous length, a distance before the start of the output, a truncated stream.

public struct InflateError: Error, CustomStringConvertible, Equatable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "corrupt DEFLATE stream: \(reason)" }
}

/// A canonical Huffman code as a lookup table: entry = symbol << 4 | code length, 0 where no code matches.
struct HuffmanTable {
    var entries: [UInt16]
    var maxLength: Int

    init(lengths: ArraySlice<UInt8>, name: String) throws {
        var count = [Int](repeating: 0, count: 16)
        for l in lengths { count[Int(l)] += 1 }
        count[0] = 0
        maxLength = (1...15).last { count[$0] > 0 } ?? 0
        // No symbols at all is legal for a distance code (RFC 1951 §3.2.7: a block of literals only); any lookup in
        // the one-entry empty table then fails as an invalid code.
        guard maxLength > 0 else { entries = [0]; return }
        var left = 1
        for l in 1...15 {
            left <<= 1; left -= count[l]
            if left < 0 { throw InflateError("\(name) code is over-subscribed") }
        }
        var next = [Int](repeating: 0, count: 16), code = 0
        for l in 1...15 { code = (code + count[l - 1]) << 1; next[l] = code }
        let size = 1 << maxLength
        var table = [UInt16](repeating: 0, count: size)
        for (i, l8) in lengths.enumerated() where l8 > 0 {
            let l = Int(l8)
            let c = next[l]; next[l] += 1
            var r = 0
            for k in 0..<l where c & (1 << k) != 0 { r |= 1 << (l - 1 - k) }
            let entry = UInt16(i << 4 | l)
            var j = r
            while j < size { table[j] = entry; j += 1 << l }
        }
        entries = table
    }
}

public enum Inflate {
    static let lengthBase: [Int] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
                                    115, 131, 163, 195, 227, 258]
    static let lengthExtra: [Int] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distBase: [Int] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025,
                                  1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    static let distExtra: [Int] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12,
                                   12, 13, 13]
    static let codeLengthOrder = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

    static let fixedLiterals: HuffmanTable = {
        var l = [UInt8](repeating: 8, count: 288)
        for i in 144..<256 { l[i] = 9 }
        for i in 256..<280 { l[i] = 7 }
        return try! HuffmanTable(lengths: l[...], name: "fixed literal/length")
    }()
    static let fixedDistances = try! HuffmanTable(lengths: [UInt8](repeating: 5, count: 30)[...], name: "fixed distance")

    /// Decompresses the raw DEFLATE stream at the start of `input`. `sizeHint`: the expected output size (only
    /// reserves memory). Returns the output and the number of input bytes the stream used (to its last whole byte).
    public static func inflate(_ input: UnsafeRawBufferPointer, sizeHint: Int = 0) throws -> (output: [UInt8], consumed: Int) {
        var s = InflateState(input: input, capacity: max(sizeHint, 4 * input.count, 1024))
        defer { s.out.deallocate() }
        var last = false
        while !last {
            last = try s.bits(1) == 1
            switch try s.bits(2) {
            case 0: try s.storedBlock()
            case 1: try s.codedBlock(fixedLiterals, fixedDistances)
            case 2:
                let (lit, dist) = try s.dynamicTables()
                try s.codedBlock(lit, dist)
            default: throw InflateError("block type 3 is reserved")
            }
        }
        let output = Array(UnsafeBufferPointer(start: s.out, count: s.count))
        return (output, s.pos - s.bitCount / 8)
    }

    public static func inflate(_ input: [UInt8], sizeHint: Int = 0) throws -> [UInt8] {
        try input.withUnsafeBytes { try inflate($0, sizeHint: sizeHint).output }
    }

    /// A zlib stream (RFC 1950): 2-byte header (method 8, window ≤ 32 KiB, no preset dictionary), DEFLATE data, and
    /// the big-endian Adler-32 of the output, which is checked.
    public static func zlibDecompress(_ input: UnsafeRawBufferPointer, sizeHint: Int = 0) throws -> [UInt8] {
        guard input.count >= 6 else { throw InflateError("zlib stream of \(input.count) bytes is too short") }
        let cmf = Int(input[0]), flg = Int(input[1])
        guard cmf & 0x0F == 8, cmf >> 4 <= 7 else { throw InflateError("zlib header 0x\(String(cmf, radix: 16)): not DEFLATE with a window ≤ 32 KiB") }
        guard (cmf << 8 | flg) % 31 == 0 else { throw InflateError("zlib header check bits are wrong") }
        guard flg & 0x20 == 0 else { throw InflateError("zlib preset dictionaries are not supported") }
        let (out, used) = try inflate(UnsafeRawBufferPointer(rebasing: input[2...]), sizeHint: sizeHint)
        let at = 2 + used
        guard at + 4 <= input.count else { throw InflateError("zlib stream ends before its Adler-32 checksum") }
        let stored = UInt32(input[at]) << 24 | UInt32(input[at + 1]) << 16 | UInt32(input[at + 2]) << 8 | UInt32(input[at + 3])
        let actual = out.withUnsafeBytes { Adler32.checksum($0) }
        guard stored == actual else { throw InflateError("Adler-32 mismatch (stored \(stored), computed \(actual))") }
        return out
    }
}

/// Decoder state: input position, bit buffer (`bitCount` valid bits, LSB first) and the growing output.
struct InflateState {
    let input: UnsafeRawBufferPointer
    var pos = 0
    var bitBuffer: UInt64 = 0
    var bitCount = 0
    var out: UnsafeMutablePointer<UInt8>
    var count = 0
    var capacity: Int

    init(input: UnsafeRawBufferPointer, capacity: Int) {
        self.input = input
        self.capacity = capacity
        out = .allocate(capacity: capacity)
    }

    @inline(__always) mutating func refill() {
        while bitCount <= 56 && pos < input.count {
            bitBuffer |= UInt64(input[pos]) << UInt64(bitCount)
            pos += 1; bitCount += 8
        }
    }

    @inline(__always) mutating func bits(_ n: Int) throws -> Int {
        if bitCount < n { refill(); if bitCount < n { throw InflateError("stream is truncated") } }
        let v = Int(bitBuffer & ((1 << UInt64(n)) - 1))
        bitBuffer >>= UInt64(n); bitCount -= n
        return v
    }

    @inline(__always) mutating func decode(_ t: HuffmanTable, _ entries: UnsafePointer<UInt16>) throws -> Int {
        if bitCount < t.maxLength { refill() }
        let e = Int(entries[Int(bitBuffer & ((1 << UInt64(t.maxLength)) - 1))])
        let l = e & 15
        if l == 0 { throw InflateError("invalid Huffman code") }
        if l > bitCount { throw InflateError("stream is truncated") }
        bitBuffer >>= UInt64(l); bitCount -= l
        return e >> 4
    }

    mutating func reserve(_ extra: Int) {
        guard count + extra > capacity else { return }
        var c = capacity * 2
        while c < count + extra { c *= 2 }
        let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
        grown.update(from: out, count: count)
        out.deallocate()
        out = grown; capacity = c
    }

    mutating func storedBlock() throws {
        // Drop to the byte boundary and hand the buffered whole bytes back to the input.
        bitBuffer >>= UInt64(bitCount % 8); bitCount -= bitCount % 8
        pos -= bitCount / 8; bitBuffer = 0; bitCount = 0
        guard pos + 4 <= input.count else { throw InflateError("stream is truncated in a stored block header") }
        let len = Int(input[pos]) | Int(input[pos + 1]) << 8, nlen = Int(input[pos + 2]) | Int(input[pos + 3]) << 8
        guard len == nlen ^ 0xFFFF else { throw InflateError("stored block length \(len) does not match its complement") }
        pos += 4
        guard pos + len <= input.count else { throw InflateError("stream is truncated in a stored block") }
        reserve(len)
        (out + count).update(from: input.baseAddress!.advanced(by: pos).assumingMemoryBound(to: UInt8.self), count: len)
        count += len; pos += len
    }

    mutating func dynamicTables() throws -> (HuffmanTable, HuffmanTable) {
        let hlit = try bits(5) + 257, hdist = try bits(5) + 1, hclen = try bits(4) + 4
        guard hlit <= 286, hdist <= 30 else { throw InflateError("\(hlit) literal/length or \(hdist) distance codes (max 286, 30)") }
        var clen = [UInt8](repeating: 0, count: 19)
        for i in 0..<hclen { clen[Inflate.codeLengthOrder[i]] = UInt8(try bits(3)) }
        let lengthCode = try HuffmanTable(lengths: clen[...], name: "code length")
        var lengths = [UInt8](repeating: 0, count: hlit + hdist)
        var i = 0
        try lengthCode.entries.withUnsafeBufferPointer { e in
            while i < hlit + hdist {
                let sym = try decode(lengthCode, e.baseAddress!)
                if sym < 16 { lengths[i] = UInt8(sym); i += 1; continue }
                var value: UInt8 = 0, repeatCount: Int
                switch sym {
                case 16:
                    guard i > 0 else { throw InflateError("length repeat with no previous length") }
                    value = lengths[i - 1]; repeatCount = 3 + (try bits(2))
                case 17: repeatCount = 3 + (try bits(3))
                default: repeatCount = 11 + (try bits(7))
                }
                guard i + repeatCount <= hlit + hdist else { throw InflateError("code lengths overrun the table") }
                for _ in 0..<repeatCount { lengths[i] = value; i += 1 }
            }
        }
        guard lengths[256] > 0 else { throw InflateError("no end-of-block code") }
        return (try HuffmanTable(lengths: lengths[0..<hlit], name: "literal/length"),
                try HuffmanTable(lengths: lengths[hlit...], name: "distance"))
    }

    mutating func codedBlock(_ lit: HuffmanTable, _ dist: HuffmanTable) throws {
        try lit.entries.withUnsafeBufferPointer { le in
            try dist.entries.withUnsafeBufferPointer { de in
                while true {
                    let sym = try decode(lit, le.baseAddress!)
                    if sym < 256 {
                        if count == capacity { reserve(1) }
                        out[count] = UInt8(sym); count += 1
                        continue
                    }
                    if sym == 256 { return }
                    let li = sym - 257
                    guard li < 29 else { throw InflateError("invalid length symbol \(sym)") }
                    let length = Inflate.lengthBase[li] + (try bits(Inflate.lengthExtra[li]))
                    let ds = try decode(dist, de.baseAddress!)
                    guard ds < 30 else { throw InflateError("invalid distance symbol \(ds)") }
                    let distance = Inflate.distBase[ds] + (try bits(Inflate.distExtra[ds]))
                    guard distance <= count else { throw InflateError("distance \(distance) reaches before the start of the output (\(count) bytes)") }
                    reserve(length)
                    let from = out + count - distance, to = out + count
                    if distance >= length { to.update(from: from, count: length) } else { for k in 0..<length { to[k] = from[k] } }
                    count += length
                }
            }
        }
    }
}
