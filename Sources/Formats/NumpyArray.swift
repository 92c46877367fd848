import Foundation

// numpy's `.npy` format (format versions 1, 2 and 3: magic "\x93NUMPY", version, a little-endian header length of
// 2 or 4 bytes, a Python-literal dict header, then the data) and `.npz` archives of them. Read: little-endian `<f8`,
// `<f4`, `<i8`, `<i4` and `|u1` in C order. Written: format 1.0, header padded with spaces to a multiple of 64 bytes
// and ended by '\n', as numpy does.

public struct NumpyError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let reason: String
    public init(file: String, _ reason: String) { self.file = file; self.reason = reason }
    public var description: String { "\(file): \(reason)" }
}

public struct NumpyArray: Equatable {
    public enum DType: String, Sendable {
        case float64 = "<f8", float32 = "<f4", int64 = "<i8", int32 = "<i4", uint8 = "|u1"
        public var size: Int {
            switch self { case .float64, .int64: return 8; case .float32, .int32: return 4; case .uint8: return 1 }
        }
    }

    public var dtype: DType
    public var shape: [Int]
    /// Raw little-endian bytes, C order.
    public var bytes: [UInt8]

    public var count: Int { shape.reduce(1, *) }

    public init(dtype: DType, shape: [Int], bytes: [UInt8]) {
        precondition(bytes.count == shape.reduce(1, *) * dtype.size, "NumpyArray: \(bytes.count) bytes for shape \(shape) of \(dtype)")
        self.dtype = dtype; self.shape = shape; self.bytes = bytes
    }

    public init(float64 values: [Double], shape: [Int]) {
        self.init(dtype: .float64, shape: shape, bytes: values.withUnsafeBytes { Array($0) })
    }

    public init(float32 values: [Float], shape: [Int]) {
        self.init(dtype: .float32, shape: shape, bytes: values.withUnsafeBytes { Array($0) })
    }

    public init(uint8 values: [UInt8], shape: [Int]) {
        self.init(dtype: .uint8, shape: shape, bytes: values)
    }

    /// The values widened to Double (any numeric dtype).
    public func doubles() -> [Double] {
        bytes.withUnsafeBytes { b -> [Double] in
            switch dtype {
            case .float64: return Array(b.bindMemory(to: Double.self))
            case .float32: return b.bindMemory(to: Float.self).map(Double.init)
            case .int64: return b.bindMemory(to: Int64.self).map(Double.init)
            case .int32: return b.bindMemory(to: Int32.self).map(Double.init)
            case .uint8: return b.map(Double.init)
            }
        }
    }

    public func floats() -> [Float] {
        if dtype == .float32 { return bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } }
        return doubles().map(Float.init)
    }

    // MARK: .npy

    /// The layout a `.npy` image's header declares: dtype, shape and where the data starts. `prefix` needs to hold
    /// the header only (the first 64 KiB at most); `file` names the array in errors (e.g. "ref.npz[mu]").
    public static func header(_ data: UnsafeRawBufferPointer, file: String) throws -> (dtype: DType, shape: [Int], dataOffset: Int) {
        guard data.count >= 10, data[0] == 0x93, Array(data[1..<6]) == Array("NUMPY".utf8) else {
            throw NumpyError(file: file, "not a .npy array (bad magic)")
        }
        let major = data[6]
        let headerLength: Int, start: Int
        switch major {
        case 1: headerLength = Int(data[8]) | Int(data[9]) << 8; start = 10
        case 2, 3:
            guard data.count >= 12 else { throw NumpyError(file: file, "truncated .npy header") }
            headerLength = Int(data[8]) | Int(data[9]) << 8 | Int(data[10]) << 16 | Int(data[11]) << 24; start = 12
        default: throw NumpyError(file: file, ".npy format version \(major).\(data[7]) (expected 1, 2 or 3)")
        }
        guard start + headerLength <= data.count else { throw NumpyError(file: file, "truncated .npy header") }
        let header = String(decoding: UnsafeRawBufferPointer(rebasing: data[start..<(start + headerLength)]), as: UTF8.self)
        let (descr, fortran, shape) = try parseHeader(header, file: file)
        guard let dtype = DType(rawValue: descr == "<u1" ? "|u1" : descr) else {
            throw NumpyError(file: file, "dtype '\(descr)' is not read (expected little-endian <f8, <f4, <i8, <i4 or |u1)")
        }
        guard !fortran else { throw NumpyError(file: file, "Fortran-order arrays are not read (write it with np.ascontiguousarray)") }
        return (dtype, shape, start + headerLength)
    }

    /// Parses one `.npy` image; `file` names it in errors.
    public init(npy data: [UInt8], file: String) throws {
        let (dtype, shape, dataStart) = try data.withUnsafeBytes { try Self.header($0, file: file) }
        let n = shape.reduce(1, *) * dtype.size
        guard data.count - dataStart == n else {
            throw NumpyError(file: file, "\(data.count - dataStart) data bytes, shape \(shape) of \(dtype.rawValue) needs \(n)")
        }
        self.init(dtype: dtype, shape: shape, bytes: Array(data[dataStart...]))
    }

    /// The header dict: {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
    static func parseHeader(_ h: String, file: String) throws -> (String, Bool, [Int]) {
        func value(_ key: String) throws -> Substring {
            guard let r = h.range(of: "'\(key)':") ?? h.range(of: "\"\(key)\":") else {
                throw NumpyError(file: file, ".npy header has no '\(key)': \(h.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            return h[r.upperBound...].drop { $0 == " " }
        }
        let d = try value("descr")
        guard let q = d.first, q == "'" || q == "\"", let close = d.dropFirst().firstIndex(of: q) else {
            throw NumpyError(file: file, ".npy header: 'descr' is not a plain dtype string (structured dtypes are not read)")
        }
        let descr = String(d[d.index(after: d.startIndex)..<close])
        let fortran = try value("fortran_order").hasPrefix("True")
        let s = try value("shape")
        guard s.first == "(", let end = s.firstIndex(of: ")") else { throw NumpyError(file: file, ".npy header: bad 'shape'") }
        let shape = try s[s.index(after: s.startIndex)..<end].split(separator: ",").compactMap { part -> Int? in
            let t = part.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { return nil }
            guard let v = Int(t.hasSuffix("L") ? String(t.dropLast()) : t), v >= 0 else {
                throw NumpyError(file: file, ".npy header: bad dimension '\(t)' in 'shape'")
            }
            return v
        }
        return (descr, fortran, shape)
    }

    /// This array as a `.npy` image (format 1.0).
    public func npy() -> [UInt8] {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '\(dtype.rawValue)', 'fortran_order': False, 'shape': (\(dims)), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        let n = header.utf8.count
        precondition(n <= 0xFFFF, "NumpyArray: header too long for format 1.0")
        var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(n & 0xFF), UInt8(n >> 8)]
        out += Array(header.utf8)
        out += bytes
        return out
    }
}

/// A `.npz` archive: named arrays (names without the ".npy" numpy adds to each entry).
public struct NumpyArchive {
    public let path: String

    public let zip: ZipArchive

    public init(path: String) throws {
        self.path = path
        zip = try ZipArchive(path: path)
    }

    public init(data: Data, path: String) throws {
        self.path = path
        zip = try ZipArchive(data: data, path: path)
    }

    /// Array names, in archive order.
    public var names: [String] { zip.entries.map { $0.name.hasSuffix(".npy") ? String($0.name.dropLast(4)) : $0.name } }

    public func contains(_ name: String) -> Bool { zip.entry(name + ".npy") != nil }

    /// The array `name`; a missing key is an error naming the file, the key and the keys present.
    public func array(_ name: String) throws -> NumpyArray {
        guard let e = zip.entry(name + ".npy") else {
            throw NumpyError(file: path, "no array '\(name)' (arrays: \(names.joined(separator: ", ")))")
        }
        do { return try NumpyArray(npy: try zip.contents(e), file: "\(path)[\(name)]") } catch let z as ZipError {
            throw NumpyError(file: z.file, z.reason)
        }
    }

    /// Writes `arrays` as an uncompressed `.npz` (what `np.savez` reads back), through a temporary file renamed into
    /// place so a reader never sees a half-written archive.
    public static func write(_ arrays: [(String, NumpyArray)], to path: String) throws {
        var w = ZipWriter()
        for (name, a) in arrays { w.add(name: name + ".npy", contents: a.npy()) }
        let tmp = path + ".tmp-\(getpid())"
        do {
            try Data(w.bytes()).write(to: URL(fileURLWithPath: tmp))
            guard rename(tmp, path) == 0 else { throw NumpyError(file: path, "cannot rename \(tmp) into place (errno \(errno))") }
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw NumpyError(file: path, "cannot write: \(error.localizedDescription)")
        }
    }
}
