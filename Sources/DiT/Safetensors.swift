import Foundation
import Tensor

/// Element types of the safetensors format that moebench reads.
public enum SafetensorsDType: String, Sendable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16", i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8"
    case u8 = "U8", bool = "BOOL"
    public var byteSize: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }
    public var weightDType: WeightDType? {
        switch self { case .f32: return .f32; case .f16: return .f16; case .bf16: return .bf16; default: return nil }
    }
}

/// One tensor inside a memory-mapped safetensors file.
public struct SafetensorsEntry: @unchecked Sendable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    /// Start of the tensor's bytes inside the mapping.
    public let data: UnsafeRawPointer
    public let byteCount: Int
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A safetensors file read by memory map (https://github.com/huggingface/safetensors format: an 8-byte
/// little-endian header length N, N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}}` with offsets
/// relative to the byte after the header, then the data). Every structural fault is reported with the path.
/// Tensors whose data is not 4-byte aligned in the file are copied once into aligned memory.
public final class SafetensorsFile: @unchecked Sendable {
    public let path: String
    public private(set) var entries: [String: SafetensorsEntry] = [:]
    /// Names in file order (ascending data offset).
    public private(set) var names: [String] = []
    public private(set) var metadata: [String: String] = [:]
    public let fileSize: Int
    private let mapping: UnsafeMutableRawPointer?
    private var copies: [UnsafeMutableRawPointer] = []

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw DiTError.io(path: path, reason: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw DiTError.io(path: path, reason: "cannot stat") }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            mapping = nil; fileSize = 0
            throw DiTError.io(path: path, reason: (st.st_mode & S_IFMT) == S_IFDIR
                ? "is a directory; give the .safetensors file inside it (e.g. \(path)/ema.safetensors)" : "not a regular file")
        }
        fileSize = Int(st.st_size)
        guard fileSize >= 8 else {
            mapping = nil
            throw DiTError.badSafetensors(path: path, reason: fileSize == 0 ? "the file is empty" : "file is \(fileSize) bytes, shorter than the 8-byte header length")
        }
        let m = mmap(nil, fileSize, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let m, m != MAP_FAILED else {
            mapping = nil
            throw DiTError.io(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        mapping = m
        try parse(UnsafeRawPointer(m))
    }

    deinit {
        if let mapping { munmap(mapping, fileSize) }
        for c in copies { c.deallocate() }
    }

    private func parse(_ base: UnsafeRawPointer) throws {
        // A safetensors header is JSON right after its 8-byte length. Without that '{', a PyTorch checkpoint
        // (torch.save: a zip archive "PK\u{3}\u{4}", or from old versions a raw pickle 0x80 <protocol 2…5>) is the
        // usual mistake.
        let b = (0..<2).map { base.load(fromByteOffset: $0, as: UInt8.self) }
        if fileSize > 8, base.load(fromByteOffset: 8, as: UInt8.self) != UInt8(ascii: "{"), (b[0] == 0x50 && b[1] == 0x4B) || (b[0] == 0x80 && (2...5).contains(b[1])) {
            throw DiTError.badSafetensors(path: path, reason: "this is a PyTorch checkpoint (.pt/.pth), not safetensors; convert it with `python3 tools/convert_checkpoint.py \(path) out.safetensors` (needs torch)")
        }
        let headerLength = Int(clamping: UInt64(littleEndian: base.loadUnaligned(as: UInt64.self)))
        guard headerLength > 0, headerLength <= fileSize - 8 else {
            throw DiTError.badSafetensors(path: path, reason: "header length \(headerLength) does not fit in a \(fileSize)-byte file")
        }
        let headerData = Data(bytes: base + 8, count: headerLength)
        guard case let .object(header)? = try? JSONDecoder().decode(JSONValue.self, from: headerData) else {
            throw DiTError.badSafetensors(path: path, reason: "the \(headerLength)-byte header is not a JSON object")
        }
        let dataStart = 8 + headerLength
        let dataSize = fileSize - dataStart
        var ordered: [(Int, String)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                if case let .object(meta) = value {
                    for (k, v) in meta { if case let .string(s) = v { metadata[k] = s } }
                }
                continue
            }
            guard case let .object(info) = value, case let .string(dtypeText)? = info["dtype"],
                  case let .array(shapeValues)? = info["shape"], case let .array(offsets)? = info["data_offsets"],
                  offsets.count == 2, case let .number(b) = offsets[0], case let .number(e) = offsets[1]
            else {
                throw DiTError.badSafetensors(path: path, reason: "tensor '\(name)': expected {dtype, shape, data_offsets}")
            }
            guard let dtype = SafetensorsDType(rawValue: dtypeText) else {
                throw DiTError.unsupportedDType(path: path, key: name, dtype: dtypeText,
                                                expected: "one of F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL")
            }
            var shape: [Int] = []
            for s in shapeValues {
                guard case let .number(v) = s, v >= 0, v == v.rounded(), v < 1e12 else {
                    throw DiTError.badSafetensors(path: path, reason: "tensor '\(name)': shape \(JSONValue.array(shapeValues)) is not a list of sizes")
                }
                shape.append(Int(v))
            }
            // Offsets and sizes come from an untrusted file: check they are integers and that nothing overflows.
            func offset(_ v: Double) -> Int? { v >= 0 && v == v.rounded() && v < 9.007e15 ? Int(v) : nil }
            guard let begin = offset(b), let end = offset(e) else {
                throw DiTError.badSafetensors(path: path, reason: "tensor '\(name)': data_offsets [\(b), \(e)] are not byte offsets")
            }
            var expectedBytes = dtype.byteSize
            for dim in shape {
                let (product, overflow) = expectedBytes.multipliedReportingOverflow(by: dim)
                guard !overflow, product < 1 << 50 else {
                    throw DiTError.badSafetensors(path: path, reason: "tensor '\(name)': shape \(shape) is impossibly large")
                }
                expectedBytes = product
            }
            guard begin >= 0, end >= begin, end <= dataSize else {
                throw DiTError.badSafetensors(path: path, reason: "tensor '\(name)': data_offsets [\(begin), \(end)] outside the \(dataSize)-byte data section (file truncated?)")
            }
            guard end - begin == expectedBytes else {
                throw DiTError.badSafetensors(path: path, reason: "tensor '\(name)': \(end - begin) bytes for shape \(shape) of \(dtype.rawValue) (expected \(expectedBytes))")
            }
            var pointer = base + dataStart + begin
            if Int(bitPattern: pointer) % 4 != 0, expectedBytes > 0 {
                let copy = UnsafeMutableRawPointer.allocate(byteCount: expectedBytes, alignment: 64)
                copy.copyMemory(from: pointer, byteCount: expectedBytes)
                copies.append(copy)
                pointer = UnsafeRawPointer(copy)
            }
            entries[name] = SafetensorsEntry(name: name, dtype: dtype, shape: shape, data: pointer, byteCount: expectedBytes)
            ordered.append((begin, name))
        }
        names = ordered.sorted { $0.0 < $1.0 }.map(\.1)
    }

    public subscript(name: String) -> SafetensorsEntry? { entries[name] }

    /// A float tensor's values as Float32 (widening F16/BF16, narrowing F64).
    public func floats(_ name: String) throws -> [Float] {
        guard let e = entries[name] else { throw DiTError.missingTensor(path: path, key: name, expectedShape: []) }
        let n = e.elementCount
        switch e.dtype {
        case .f32: return Array(UnsafeBufferPointer(start: e.data.assumingMemoryBound(to: Float.self), count: n))
        case .f64: return UnsafeBufferPointer(start: e.data.assumingMemoryBound(to: Double.self), count: n).map { Float($0) }
        case .f16, .bf16:
            var out = [Float](repeating: 0, count: n)
            out.withUnsafeMutableBufferPointer {
                let src = e.data.assumingMemoryBound(to: UInt16.self)
                if e.dtype == .f16 { widenF16(src, into: $0.baseAddress!, count: n) } else { widenBF16(src, into: $0.baseAddress!, count: n) }
            }
            return out
        default:
            throw DiTError.unsupportedDType(path: path, key: name, dtype: e.dtype.rawValue, expected: "a float type (F32, F16, BF16, F64)")
        }
    }

    /// An integer tensor's values (I64, I32, I16, I8, U8).
    public func integers(_ name: String) throws -> [Int] {
        guard let e = entries[name] else { throw DiTError.missingTensor(path: path, key: name, expectedShape: []) }
        let n = e.elementCount
        switch e.dtype {
        case .i64: return (0..<n).map { Int(e.data.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }
        case .i32: return (0..<n).map { Int(e.data.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) }
        case .i16: return (0..<n).map { Int(e.data.loadUnaligned(fromByteOffset: 2 * $0, as: Int16.self)) }
        case .i8: return (0..<n).map { Int(e.data.load(fromByteOffset: $0, as: Int8.self)) }
        case .u8: return (0..<n).map { Int(e.data.load(fromByteOffset: $0, as: UInt8.self)) }
        default:
            throw DiTError.unsupportedDType(path: path, key: name, dtype: e.dtype.rawValue, expected: "an integer type (I64 or I32)")
        }
    }
}

/// Writes a safetensors file: tensors in the given order, header padded with spaces to 8 bytes.
public struct SafetensorsWriter {
    private var items: [(name: String, dtype: SafetensorsDType, shape: [Int], bytes: Data)] = []
    public var metadata: [String: String] = [:]

    public init() {}

    public mutating func add(_ name: String, shape: [Int], floats: [Float]) {
        precondition(shape.reduce(1, *) == floats.count, "SafetensorsWriter: \(name) shape \(shape) vs \(floats.count) values")
        items.append((name, .f32, shape, floats.withUnsafeBytes { Data($0) }))
    }

    public mutating func add(_ name: String, shape: [Int], int32s: [Int32]) {
        precondition(shape.reduce(1, *) == int32s.count, "SafetensorsWriter: \(name) shape \(shape) vs \(int32s.count) values")
        items.append((name, .i32, shape, int32s.withUnsafeBytes { Data($0) }))
    }

    public mutating func add(_ name: String, shape: [Int], int64s: [Int64]) {
        precondition(shape.reduce(1, *) == int64s.count, "SafetensorsWriter: \(name) shape \(shape) vs \(int64s.count) values")
        items.append((name, .i64, shape, int64s.withUnsafeBytes { Data($0) }))
    }

    public mutating func add(_ name: String, dtype: SafetensorsDType, shape: [Int], bytes: Data) {
        precondition(shape.reduce(1, *) * dtype.byteSize == bytes.count, "SafetensorsWriter: \(name) byte count")
        items.append((name, dtype, shape, bytes))
    }

    public func data() -> Data {
        var header: [String: JSONValue] = [:]
        var offset = 0
        for item in items {
            header[item.name] = .object([
                "dtype": .string(item.dtype.rawValue),
                "shape": .array(item.shape.map { .number(Double($0)) }),
                "data_offsets": .array([.number(Double(offset)), .number(Double(offset + item.bytes.count))]),
            ])
            offset += item.bytes.count
        }
        if !metadata.isEmpty { header["__metadata__"] = .object(metadata.mapValues { .string($0) }) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var json = (try? encoder.encode(JSONValue.object(header))) ?? Data("{}".utf8)
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var out = Data()
        var n = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(json)
        for item in items { out.append(item.bytes) }
        return out
    }

    public func write(to path: String) throws {
        do { try data().write(to: URL(fileURLWithPath: path)) } catch {
            throw DiTError.io(path: path, reason: "cannot write: \(error.localizedDescription)")
        }
    }
}
