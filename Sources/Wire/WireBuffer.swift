// Byte buffers of the wire format: a growable, reusable output buffer and a bounds-checked input cursor.
// Multi-byte values are little-endian on the wire (docs/protocol.md §2).

import Foundation

/// A growable byte buffer owned by one connection and reused for every frame (grows, never shrinks).
public final class WireBuffer {
    public private(set) var base: UnsafeMutableRawPointer
    public private(set) var capacity: Int
    /// Bytes written so far, starting at `base`.
    public var count: Int = 0

    public init(capacity: Int = 64 << 10) {
        self.capacity = max(capacity, 64)
        base = UnsafeMutableRawPointer.allocate(byteCount: self.capacity, alignment: 64)
    }
    deinit { base.deallocate() }

    public func reset() { count = 0 }

    /// Ensures room for `extra` more bytes after `count`; keeps the content.
    @inline(__always) public func reserve(_ extra: Int) {
        if count + extra > capacity { grow(count + extra) }
    }

    /// Ensures a total capacity of at least `total` bytes; keeps the content.
    public func ensureCapacity(_ total: Int) {
        if total > capacity { grow(total) }
    }

    private func grow(_ needed: Int) {
        var newCapacity = capacity
        while newCapacity < needed { newCapacity = newCapacity < (1 << 30) ? newCapacity * 2 : newCapacity + (1 << 30) }
        let p = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 64)
        p.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = p
        capacity = newCapacity
    }

    @inline(__always) public func append<T: FixedWidthInteger>(_ v: T) {
        reserve(MemoryLayout<T>.size)
        (base + count).storeBytes(of: v.littleEndian, as: T.self)
        count += MemoryLayout<T>.size
    }

    @inline(__always) public func append(_ v: Float) { append(v.bitPattern) }

    public func append(bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        reserve(bytes.count)
        (base + count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        count += bytes.count
    }

    public func append(bytes: [UInt8]) { bytes.withUnsafeBytes { append(bytes: $0) } }

    /// `u16` length then UTF-8 bytes (≤ `WireLimits.maxString`).
    public func append(string: String) throws {
        var s = string
        try s.withUTF8 { u in
            guard u.count <= WireLimits.maxString else {
                throw WireError.malformed(field: "string", reason: "\(u.count) bytes, limit \(WireLimits.maxString)")
            }
            append(UInt16(u.count))
            append(bytes: UnsafeRawBufferPointer(u))
        }
    }

    /// Reserves `n` bytes at the end and returns where they start (for encoders writing in place).
    public func claim(_ n: Int) -> UnsafeMutableRawPointer {
        reserve(n)
        let p = base + count
        count += n
        return p
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}

/// A bounds-checked cursor over a received payload. Every read names its field in the error it throws.
public struct WireReader {
    public let base: UnsafeRawPointer?
    public let count: Int
    public private(set) var offset: Int = 0

    public init(_ bytes: UnsafeRawBufferPointer) {
        base = bytes.baseAddress
        count = bytes.count
    }

    public var remaining: Int { count - offset }

    @inline(__always) mutating func need(_ n: Int, _ field: StaticString) throws {
        guard n >= 0, n <= count - offset else {
            throw WireError.malformed(field: "\(field)", reason: "needs \(n) bytes, \(count - offset) left")
        }
    }

    public mutating func read<T: FixedWidthInteger>(_: T.Type, _ field: StaticString) throws -> T {
        try need(MemoryLayout<T>.size, field)
        let v = T(littleEndian: base!.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += MemoryLayout<T>.size
        return v
    }

    public mutating func readFloat(_ field: StaticString) throws -> Float {
        Float(bitPattern: try read(UInt32.self, field))
    }

    public mutating func bytes(_ n: Int, _ field: StaticString) throws -> UnsafeRawBufferPointer {
        try need(n, field)
        let r = UnsafeRawBufferPointer(start: base! + offset, count: n)
        offset += n
        return r
    }

    public mutating func byteArray(_ n: Int, _ field: StaticString) throws -> [UInt8] {
        Array(try bytes(n, field))
    }

    public mutating func string(_ field: StaticString) throws -> String {
        let n = Int(try read(UInt16.self, field))
        guard n <= WireLimits.maxString else {
            throw WireError.malformed(field: "\(field)", reason: "string of \(n) bytes, limit \(WireLimits.maxString)")
        }
        let b = try bytes(n, field)
        guard let s = String(validating: b.bindMemory(to: UInt8.self), as: UTF8.self) else {
            throw WireError.malformed(field: "\(field)", reason: "not valid UTF-8")
        }
        return s
    }

    /// Reads a `u32` list count and checks it against `maxList` and the bytes left (`elementSize` each).
    public mutating func listCount(_ field: StaticString, elementSize: Int) throws -> Int {
        let n = Int(try read(UInt32.self, field))
        guard n <= WireLimits.maxList, n * elementSize <= remaining else {
            throw WireError.malformed(field: "\(field)", reason: "list of \(n) entries does not fit")
        }
        return n
    }

    /// Throws unless the whole payload was consumed.
    public func finish(_ message: StaticString) throws {
        guard offset == count else {
            throw WireError.malformed(field: "\(message)", reason: "\(count - offset) trailing bytes")
        }
    }
}
