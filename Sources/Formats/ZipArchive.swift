import Foundation

// The zip container of numpy's `.npz`: entries STORED (method 0, `np.savez`) or DEFLATE (method 8,
// `np.savez_compressed`), with ZIP64 extra fields (numpy writes them with `force_zip64=True`). Every entry's CRC-32 is
// checked on read. The writer writes STORED entries without ZIP64 (each entry and the archive below 4 GiB).

public struct ZipError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let reason: String
    public init(file: String, _ reason: String) { self.file = file; self.reason = reason }
    public var description: String { "\(file): \(reason)" }
}

public struct ZipArchive {
    public struct Entry {
        public let name: String
        public let method: Int
        public let crc32: UInt32
        public let compressedSize: Int
        public let uncompressedSize: Int
        let localHeaderOffset: Int
    }

    public let path: String
    public let data: Data
    public let entries: [Entry]

    public init(path: String) throws {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw ZipError(file: path, "cannot read: \(error.localizedDescription)")
        }
        try self.init(data: data, path: path)
    }

    public init(data: Data, path: String) throws {
        self.path = path
        self.data = data
        entries = try data.withUnsafeBytes { try Self.readDirectory($0, path: path) }
    }

    public func entry(_ name: String) -> Entry? { entries.first { $0.name == name } }

    /// Where a STORED entry's bytes lie in `data` (read in place, without a copy and without the CRC check); nil for a
    /// compressed entry.
    public func storedRange(_ e: Entry) throws -> Range<Int>? {
        guard e.method == 0 else { return nil }
        return try data.withUnsafeBytes { b in
            let o = e.localHeaderOffset
            guard o + 30 <= b.count, Self.u32(b, o) == 0x0403_4B50 else {
                throw ZipError(file: path, "entry \(e.name): no local header at offset \(o)")
            }
            let start = o + 30 + Int(Self.u16(b, o + 26)) + Int(Self.u16(b, o + 28))
            guard start + e.compressedSize <= b.count else { throw ZipError(file: path, "entry \(e.name) is truncated") }
            return start..<(start + e.compressedSize)
        }
    }

    /// The entry's bytes, decompressed and CRC-checked.
    public func contents(_ e: Entry) throws -> [UInt8] {
        try data.withUnsafeBytes { (b: UnsafeRawBufferPointer) -> [UInt8] in
            let o = e.localHeaderOffset
            guard o + 30 <= b.count, Self.u32(b, o) == 0x0403_4B50 else {
                throw ZipError(file: path, "entry \(e.name): no local header at offset \(o)")
            }
            let start = o + 30 + Int(Self.u16(b, o + 26)) + Int(Self.u16(b, o + 28))
            guard start + e.compressedSize <= b.count else { throw ZipError(file: path, "entry \(e.name) is truncated") }
            let raw = UnsafeRawBufferPointer(rebasing: b[start..<(start + e.compressedSize)])
            let out: [UInt8]
            switch e.method {
            case 0: out = Array(raw)
            case 8:
                do { out = try Inflate.inflate(raw, sizeHint: e.uncompressedSize).output } catch let i as InflateError {
                    throw ZipError(file: path, "entry \(e.name): \(i)")
                }
            default: throw ZipError(file: path, "entry \(e.name): compression method \(e.method) (only 0 stored and 8 deflate are read)")
            }
            guard out.count == e.uncompressedSize else {
                throw ZipError(file: path, "entry \(e.name): \(out.count) bytes, the directory says \(e.uncompressedSize)")
            }
            let crc = CRC32.checksum(out)
            guard crc == e.crc32 else {
                throw ZipError(file: path, "entry \(e.name): CRC-32 mismatch (stored \(String(e.crc32, radix: 16)), computed \(String(crc, radix: 16))): the file is corrupt")
            }
            return out
        }
    }

    static func u16(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt16 { UInt16(b[o]) | UInt16(b[o + 1]) << 8 }
    static func u32(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt32 { UInt32(u16(b, o)) | UInt32(u16(b, o + 2)) << 16 }
    static func u64(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt64 { UInt64(u32(b, o)) | UInt64(u32(b, o + 4)) << 32 }

    static func readDirectory(_ b: UnsafeRawBufferPointer, path: String) throws -> [Entry] {
        // End of central directory: 22 bytes plus a comment of at most 65535 bytes, at the end of the file.
        guard b.count >= 22 else { throw ZipError(file: path, "not a zip archive (\(b.count) bytes)") }
        var eocd = -1
        var o = b.count - 22
        while o >= max(0, b.count - 22 - 65535) {
            if u32(b, o) == 0x0605_4B50 { eocd = o; break }
            o -= 1
        }
        guard eocd >= 0 else { throw ZipError(file: path, "not a zip archive (no end-of-central-directory record; truncated?)") }
        var count = Int(u16(b, eocd + 10)), dirOffset = Int(u32(b, eocd + 16))
        if count == 0xFFFF || dirOffset == 0xFFFF_FFFF {
            // ZIP64 end of central directory locator just before the EOCD, pointing at the ZIP64 record.
            let loc = eocd - 20
            guard loc >= 0, u32(b, loc) == 0x0706_4B50 else { throw ZipError(file: path, "ZIP64 locator missing") }
            let rec = Int(u64(b, loc + 8))
            guard rec + 56 <= b.count, u32(b, rec) == 0x0606_4B50 else { throw ZipError(file: path, "ZIP64 end record missing") }
            count = Int(u64(b, rec + 32)); dirOffset = Int(u64(b, rec + 48))
        }
        var entries = [Entry]()
        var p = dirOffset
        for i in 0..<count {
            guard p + 46 <= b.count, u32(b, p) == 0x0201_4B50 else {
                throw ZipError(file: path, "central directory entry \(i) is missing or corrupt")
            }
            let method = Int(u16(b, p + 10)), crc = u32(b, p + 16)
            var csize = Int(u32(b, p + 20)), usize = Int(u32(b, p + 24))
            let nameLen = Int(u16(b, p + 28)), extraLen = Int(u16(b, p + 30)), commentLen = Int(u16(b, p + 32))
            var offset = Int(u32(b, p + 42))
            guard p + 46 + nameLen + extraLen <= b.count else { throw ZipError(file: path, "central directory entry \(i) is truncated") }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: b[(p + 46)..<(p + 46 + nameLen)]), as: UTF8.self)
            // ZIP64 extra field (id 1): the 64-bit values of exactly those fields that are 0xFFFFFFFF, in this order.
            var e = p + 46 + nameLen
            let end = e + extraLen
            while e + 4 <= end {
                let id = u16(b, e), size = Int(u16(b, e + 2))
                if id == 1 {
                    var f = e + 4
                    if usize == 0xFFFF_FFFF { usize = Int(u64(b, f)); f += 8 }
                    if csize == 0xFFFF_FFFF { csize = Int(u64(b, f)); f += 8 }
                    if offset == 0xFFFF_FFFF { offset = Int(u64(b, f)); f += 8 }
                }
                e += 4 + size
            }
            entries.append(Entry(name: name, method: method, crc32: crc, compressedSize: csize, uncompressedSize: usize,
                                 localHeaderOffset: offset))
            p += 46 + nameLen + extraLen + commentLen
        }
        return entries
    }
}

/// Writes a zip archive of STORED entries (what `np.savez` writes, without its ZIP64 fields).
public struct ZipWriter {
    private var body = [UInt8]()
    private var directory = [UInt8]()
    private var count = 0

    public init() {}

    public mutating func add(name: String, contents: [UInt8]) {
        let nameBytes = Array(name.utf8)
        let crc = CRC32.checksum(contents)
        let offset = body.count
        precondition(offset + contents.count < 0xFFFF_FFFF, "ZipWriter: archives of 4 GiB or more need ZIP64, which is not written")
        func put16(_ a: inout [UInt8], _ v: Int) { a.append(UInt8(v & 0xFF)); a.append(UInt8(v >> 8 & 0xFF)) }
        func put32(_ a: inout [UInt8], _ v: UInt32) { put16(&a, Int(v & 0xFFFF)); put16(&a, Int(v >> 16)) }
        // Local header: version 20, no flags, method 0, DOS time/date of 1980-01-01 00:00.
        put32(&body, 0x0403_4B50); put16(&body, 20); put16(&body, 0); put16(&body, 0); put16(&body, 0); put16(&body, 0x21)
        put32(&body, crc); put32(&body, UInt32(contents.count)); put32(&body, UInt32(contents.count))
        put16(&body, nameBytes.count); put16(&body, 0)
        body += nameBytes
        body += contents
        put32(&directory, 0x0201_4B50); put16(&directory, 20); put16(&directory, 20); put16(&directory, 0); put16(&directory, 0)
        put16(&directory, 0); put16(&directory, 0x21); put32(&directory, crc); put32(&directory, UInt32(contents.count))
        put32(&directory, UInt32(contents.count)); put16(&directory, nameBytes.count); put16(&directory, 0); put16(&directory, 0)
        put16(&directory, 0); put16(&directory, 0); put32(&directory, 0); put32(&directory, UInt32(offset))
        directory += nameBytes
        count += 1
    }

    public func bytes() -> [UInt8] {
        var out = body + directory
        func put16(_ v: Int) { out.append(UInt8(v & 0xFF)); out.append(UInt8(v >> 8 & 0xFF)) }
        func put32(_ v: Int) { put16(v & 0xFFFF); put16(v >> 16) }
        put32(0x0605_4B50); put16(0); put16(0); put16(count); put16(count)
        put32(directory.count); put32(body.count); put16(0)
        return out
    }
}
