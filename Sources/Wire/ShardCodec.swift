// The activation-shard codec (docs/protocol.md §4): dtype cast → optional byte shuffle → LZ4 block, with a
// stored-raw escape, and the per-connection automatic LZ4 decision (§4.1).

import CLZ4
import Foundation

public enum ShardDType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0, f16 = 1, bf16 = 2
    public var size: Int { self == .f32 ? 4 : 2 }
    public var description: String { self == .f32 ? "f32" : self == .f16 ? "f16" : "bf16" }
}

public enum CompressionMode: String, Sendable, CaseIterable {
    /// Never compress.
    case none
    /// Always try LZ4 (the stored-raw escape still applies).
    case lz4
    /// Decide per connection from measured ratio, codec speed and link speed.
    case auto
}

public struct ShardOptions: Sendable, Equatable {
    public var dtype: ShardDType
    public var shuffle: Bool
    public var compression: CompressionMode
    public init(dtype: ShardDType = .f32, shuffle: Bool = true, compression: CompressionMode = .auto) {
        self.dtype = dtype; self.shuffle = shuffle; self.compression = compression
    }
    /// F32, no shuffle, no LZ4: the bytes are the floats.
    public static let raw = ShardOptions(dtype: .f32, shuffle: false, compression: .none)
    /// Exact by default: F32, shuffle, LZ4 when it pays.
    public static let `default` = ShardOptions()
}

/// What one encode did, for statistics and the benchmark's time split.
public struct ShardEncodeInfo: Sendable {
    public var rawBytes: Int = 0
    public var storedBytes: Int = 0
    public var compressed: Bool = false
    public var nanos: UInt64 = 0
}

/// A shard inside a received payload (valid while the payload is).
public struct ShardView {
    public var dtype: ShardDType
    public var shuffle: Bool
    public var compressed: Bool
    public var elementCount: Int
    public var stored: UnsafeRawBufferPointer

    public static let headerSize = 12
    /// An LZ4 block decodes to at most about 255 bytes per stored byte (a match length grows 255 per extra byte).
    public static let maxLZ4Expansion = 255

    /// Reads a shard header and its bytes; `expectedCount` is what the enclosing message implies.
    public static func read(from r: inout WireReader, expectedCount: Int, field: StaticString) throws -> ShardView {
        let d = try r.read(UInt8.self, field)
        let s = try r.read(UInt8.self, field)
        let c = try r.read(UInt8.self, field)
        let reserved = try r.read(UInt8.self, field)
        let n = Int(try r.read(UInt32.self, field))
        let storedLength = Int(try r.read(UInt32.self, field))
        guard let dtype = ShardDType(rawValue: d) else {
            throw WireError.malformed(field: "\(field).dtype", reason: "unknown dtype \(d)")
        }
        guard s <= 1, c <= 1, reserved == 0 else {
            throw WireError.malformed(field: "\(field)", reason: "shuffle \(s), compression \(c), reserved \(reserved)")
        }
        guard n == expectedCount else {
            throw WireError.malformed(field: "\(field).elementCount", reason: "\(n) values, message implies \(expectedCount)")
        }
        if c == 0 && storedLength != n * dtype.size {
            throw WireError.malformed(field: "\(field).storedLength",
                                      reason: "raw shard of \(n) \(dtype) values must be \(n * dtype.size) bytes, is \(storedLength)")
        }
        if c == 1 && n * dtype.size > maxLZ4Expansion * storedLength + 64 {
            throw WireError.malformed(field: "\(field).storedLength",
                                      reason: "an LZ4 block of \(storedLength) bytes cannot decode to \(n * dtype.size) bytes "
                                          + "(at most \(maxLZ4Expansion)× + 64)")
        }
        let bytes = try r.bytes(storedLength, field)
        return ShardView(dtype: dtype, shuffle: s == 1, compressed: c == 1, elementCount: n, stored: bytes)
    }
}

/// Per-connection moving averages that decide whether LZ4 pays (docs/protocol.md §4.1).
public struct AutoCompression: Sendable {
    public static let alpha = 0.25
    public static let trialInterval = 16
    /// EWMA of compressed/raw (1 = incompressible); nil until the first trial.
    public private(set) var ratio: Double?
    /// Bytes of raw input compressed per second.
    public private(set) var compressSpeed: Double = 0
    /// Bytes of raw output decompressed per second; 0 = unknown (assumed 4 × compressSpeed).
    public private(set) var decompressSpeed: Double = 0
    /// Link goodput in bytes per second (assumed 1 GB/s until measured).
    public private(set) var linkSpeed: Double = 1e9
    var sinceTrial = 0
    var linkMeasured = false

    public init() {}

    @inline(__always) static func ewma(_ old: Double, _ new: Double, first: Bool) -> Double {
        first ? new : old + alpha * (new - old)
    }

    public mutating func observeCompression(raw: Int, compressed: Int, seconds: Double) {
        guard raw > 0, seconds > 0 else { return }
        let first = ratio == nil
        ratio = Self.ewma(ratio ?? 1, Double(min(compressed, raw)) / Double(raw), first: first)
        compressSpeed = Self.ewma(compressSpeed, Double(raw) / seconds, first: first)
    }

    public mutating func observeDecompression(raw: Int, seconds: Double) {
        guard raw > 0, seconds > 0 else { return }
        decompressSpeed = Self.ewma(decompressSpeed, Double(raw) / seconds, first: decompressSpeed == 0)
    }

    /// `bytes` moved over the link in `seconds` (both directions of a request, excluding worker compute).
    public mutating func observeLink(bytes: Int, seconds: Double) {
        guard bytes > 0, seconds > 0 else { return }
        linkSpeed = Self.ewma(linkSpeed, Double(bytes) / seconds, first: !linkMeasured)
        linkMeasured = true
    }

    /// (1 − r)/L > 1/c + 1/d: the transfer time saved exceeds the codec time spent, per raw byte.
    public var compressionPays: Bool {
        guard let r = ratio, compressSpeed > 0 else { return true }
        let d = decompressSpeed > 0 ? decompressSpeed : 4 * compressSpeed
        return (1 - r) / linkSpeed > 1 / compressSpeed + 1 / d
    }

    /// Whether to run LZ4 on the next shard: when it pays, and every `trialInterval`-th shard otherwise.
    public mutating func shouldTry() -> Bool {
        if compressionPays { sinceTrial = 0; return true }
        sinceTrial += 1
        if sinceTrial >= Self.trialInterval { sinceTrial = 0; return true }
        return false
    }
}

@inline(__always) public func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Encodes and decodes shards with scratch buffers that are reused (grown, never shrunk). One per connection.
public final class ShardCodec {
    var scratchA: UnsafeMutableRawPointer
    var scratchB: UnsafeMutableRawPointer
    var scratchCapacity: Int
    public var auto = AutoCompression()
    /// Bytes escaped to raw because LZ4 did not save ≥ 1/32.
    public private(set) var escapes = 0

    public init(capacity: Int = 1 << 16) {
        scratchCapacity = capacity
        scratchA = .allocate(byteCount: capacity, alignment: 64)
        scratchB = .allocate(byteCount: capacity, alignment: 64)
    }
    deinit { scratchA.deallocate(); scratchB.deallocate() }

    func ensureScratch(_ n: Int) {
        guard n > scratchCapacity else { return }
        scratchA.deallocate(); scratchB.deallocate()
        scratchCapacity = max(n, scratchCapacity * 2)
        scratchA = .allocate(byteCount: scratchCapacity, alignment: 64)
        scratchB = .allocate(byteCount: scratchCapacity, alignment: 64)
    }

    /// Appends a shard (12-byte header + stored bytes) of `count` floats to `buffer`.
    ///
    /// Passes over the data: the cast (F16/BF16) and the shuffle write straight into the frame buffer when no LZ4
    /// follows, else into scratch for LZ4 to read; BF16 cast and shuffle are one fused pass. So F32 raw and BF16 raw
    /// are one pass each (copy, resp. cast), BF16 + shuffle + LZ4 is cast-and-shuffle then LZ4 (plus a copy of the
    /// staged bytes only when the stored-raw escape applies). The bytes are those of the three stages run one after
    /// the other (docs/protocol.md §4).
    @discardableResult
    public func encode(_ src: UnsafePointer<Float>, count: Int, options: ShardOptions, into buffer: WireBuffer) throws
        -> ShardEncodeInfo {
        let t0 = monotonicNanos()
        let size = options.dtype.size
        let rawBytes = count * size
        guard rawBytes <= Int(Int32.max) - 65536 else { throw WireError.codec("shard of \(rawBytes) bytes is too large") }
        ensureScratch(rawBytes)
        // Stage 3's decision comes first: the shuffle only helps LZ4, so `auto` skips it when it sends raw.
        let tryLZ4: Bool
        switch options.compression {
        case .none: tryLZ4 = false
        case .lz4: tryLZ4 = true
        case .auto: tryLZ4 = auto.shouldTry()
        }
        let shuffle = options.shuffle && (tryLZ4 || options.compression != .auto)
        let headerAt = buffer.count
        buffer.reserve(ShardView.headerSize + (tryLZ4 ? Int(LZ4_compressBound(Int32(rawBytes))) : rawBytes))
        _ = buffer.claim(ShardView.headerSize)
        // Where stored bytes go; valid until the next reserve (none below).
        let out = buffer.base + buffer.count
        // The last of stages 1–2 writes to `out` when LZ4 does not follow (and `out` is 2-byte aligned for the
        // 16-bit casts; a shard behind an odd-length LZ4 shard may not be), else to scratch.
        let staged: UnsafeMutableRawPointer = tryLZ4 || Int(bitPattern: out) % 2 != 0 ? scratchA : out
        var stage: UnsafeRawPointer = UnsafeRawPointer(src)
        switch (options.dtype, shuffle) {
        case (.f32, false):
            if !tryLZ4 { out.copyMemory(from: stage, byteCount: rawBytes); stage = UnsafeRawPointer(out) }
        case (.f32, true):
            ByteShuffle.shuffle(stage, staged, count: count, elementSize: 4); stage = UnsafeRawPointer(staged)
        case (.bf16, false):
            FloatCast.toBF16(src, staged.assumingMemoryBound(to: UInt16.self), count: count); stage = UnsafeRawPointer(staged)
        case (.bf16, true):
            FloatCast.toBF16Shuffled(src, staged.assumingMemoryBound(to: UInt8.self), count: count)
            stage = UnsafeRawPointer(staged)
        case (.f16, false):
            FloatCast.toF16(src, staged.assumingMemoryBound(to: UInt16.self), count: count); stage = UnsafeRawPointer(staged)
        case (.f16, true):
            FloatCast.toF16(src, scratchB.assumingMemoryBound(to: UInt16.self), count: count)
            ByteShuffle.shuffle(scratchB, staged, count: count, elementSize: 2); stage = UnsafeRawPointer(staged)
        }
        // Stage 3: LZ4 from scratch straight into the frame buffer (the bytes are already there otherwise).
        var storedBytes = rawBytes
        var compressed = false
        if tryLZ4 && rawBytes > 0 {
            let tc = monotonicNanos()
            let n = Int(LZ4_compress_default(stage.assumingMemoryBound(to: CChar.self), out.assumingMemoryBound(to: CChar.self),
                                             Int32(rawBytes), LZ4_compressBound(Int32(rawBytes))))
            auto.observeCompression(raw: rawBytes, compressed: n > 0 ? n : rawBytes,
                                    seconds: Double(monotonicNanos() - tc) * 1e-9)
            if n > 0 && n <= rawBytes - rawBytes / 32 && n < rawBytes {
                storedBytes = n; compressed = true
            } else {
                escapes += 1
            }
        }
        if !compressed && stage != UnsafeRawPointer(out) && rawBytes > 0 {
            out.copyMemory(from: stage, byteCount: rawBytes)
        }
        buffer.count += storedBytes
        let h = buffer.base + headerAt
        h.storeBytes(of: options.dtype.rawValue, as: UInt8.self)
        (h + 1).storeBytes(of: UInt8(shuffle ? 1 : 0), as: UInt8.self)
        (h + 2).storeBytes(of: UInt8(compressed ? 1 : 0), as: UInt8.self)
        (h + 3).storeBytes(of: UInt8(0), as: UInt8.self)
        (h + 4).storeBytes(of: UInt32(count).littleEndian, as: UInt32.self)
        (h + 8).storeBytes(of: UInt32(storedBytes).littleEndian, as: UInt32.self)
        return ShardEncodeInfo(rawBytes: rawBytes, storedBytes: storedBytes, compressed: compressed,
                               nanos: monotonicNanos() - t0)
    }

    /// Decompresses `shard` (when LZ4) into `target` (`rawBytes` bytes) and returns where its bytes now are:
    /// `target`, or the stored bytes themselves when not compressed.
    private func inflate(_ shard: ShardView, rawBytes: Int, into target: UnsafeMutableRawPointer) throws -> UnsafeRawPointer {
        if shard.compressed {
            let td = monotonicNanos()
            let got = LZ4_decompress_safe(shard.stored.baseAddress?.assumingMemoryBound(to: CChar.self),
                                          target.assumingMemoryBound(to: CChar.self),
                                          Int32(shard.stored.count), Int32(rawBytes))
            guard Int(got) == rawBytes else {
                throw WireError.codec("LZ4 block decodes to \(got) bytes, expected \(rawBytes)")
            }
            auto.observeDecompression(raw: rawBytes, seconds: Double(monotonicNanos() - td) * 1e-9)
            return UnsafeRawPointer(target)
        }
        guard shard.stored.count == rawBytes else {
            throw WireError.codec("raw shard has \(shard.stored.count) bytes, expected \(rawBytes)")
        }
        return shard.stored.baseAddress ?? UnsafeRawPointer(target)
    }

    /// Decodes `shard` into `dst` (`shard.elementCount` floats). Returns nanoseconds spent.
    /// Passes: LZ4 (when compressed) into `dst` itself for unshuffled F32, else into scratch; unshuffle and widen
    /// are one fused pass for shuffled BF16.
    @discardableResult
    public func decode(_ shard: ShardView, into dst: UnsafeMutablePointer<Float>) throws -> UInt64 {
        let t0 = monotonicNanos()
        let n = shard.elementCount
        let size = shard.dtype.size
        let rawBytes = n * size
        guard rawBytes <= Int(Int32.max) else { throw WireError.codec("shard of \(rawBytes) bytes is too large") }
        ensureScratch(rawBytes)
        let unshuffledF32 = shard.dtype == .f32 && !shard.shuffle
        var current = try inflate(shard, rawBytes: rawBytes, into: unshuffledF32 ? UnsafeMutableRawPointer(dst) : scratchA)
        switch (shard.dtype, shard.shuffle) {
        case (.f32, false):
            if current != UnsafeRawPointer(dst) && rawBytes > 0 {
                UnsafeMutableRawPointer(dst).copyMemory(from: current, byteCount: rawBytes)
            }
        case (.f32, true):
            ByteShuffle.unshuffle(current, UnsafeMutableRawPointer(dst), count: n, elementSize: 4)
        case (.bf16, false):
            FloatCast.fromBF16(current.assumingMemoryBound(to: UInt16.self), dst, count: n)
        case (.bf16, true):
            FloatCast.fromBF16Shuffled(current.assumingMemoryBound(to: UInt8.self), dst, count: n)
        case (.f16, let shuffled):
            if shuffled {
                ByteShuffle.unshuffle(current, scratchB, count: n, elementSize: 2)
                current = UnsafeRawPointer(scratchB)
            }
            FloatCast.fromF16(current.assumingMemoryBound(to: UInt16.self), dst, count: n)
        }
        return monotonicNanos() - t0
    }

    /// Decodes a BF16 `shard` into BF16 bit patterns `dst` (`shard.elementCount` values) without widening, for
    /// BF16 GEMMs that would round widened values back to these same bits. LZ4 (when compressed) goes straight
    /// into `dst` when unshuffled, else into scratch and is unshuffled into `dst`; an uncompressed unshuffled shard
    /// is copied (a reader that can use the payload in place should). Throws `codec` for other dtypes and for LZ4
    /// blocks that do not decode to exactly `2 × elementCount` bytes. Returns nanoseconds spent.
    @discardableResult
    public func decode(bf16 shard: ShardView, into dst: UnsafeMutablePointer<UInt16>) throws -> UInt64 {
        let t0 = monotonicNanos()
        guard shard.dtype == .bf16 else { throw WireError.codec("a \(shard.dtype) shard cannot be decoded to BF16 bits") }
        let n = shard.elementCount
        let rawBytes = n * 2
        guard rawBytes <= Int(Int32.max) else { throw WireError.codec("shard of \(rawBytes) bytes is too large") }
        ensureScratch(rawBytes)
        let current = try inflate(shard, rawBytes: rawBytes, into: shard.shuffle ? scratchA : UnsafeMutableRawPointer(dst))
        if shard.shuffle {
            ByteShuffle.unshuffle(current, UnsafeMutableRawPointer(dst), count: n, elementSize: 2)
        } else if current != UnsafeRawPointer(dst) && rawBytes > 0 {
            UnsafeMutableRawPointer(dst).copyMemory(from: current, byteCount: rawBytes)
        }
        return monotonicNanos() - t0
    }
}

extension ShardOptions: CustomStringConvertible {
    /// Parses `dtype[+shuffle][+lz4|+auto]`, e.g. `f32` (raw), `f32+shuffle+auto` (the default),
    /// `bf16+shuffle+lz4`. Returns nil for anything else.
    public init?(parsing text: String) {
        let parts = text.lowercased().split(separator: "+").map(String.init)
        guard let first = parts.first, let dtype = ShardDType.allCases.first(where: { $0.description == first }) else {
            return nil
        }
        var shuffle = false, compression = CompressionMode.none
        for p in parts.dropFirst() {
            switch p {
            case "shuffle": shuffle = true
            case "lz4": compression = .lz4
            case "auto": compression = .auto
            default: return nil
            }
        }
        self.init(dtype: dtype, shuffle: shuffle, compression: compression)
    }

    public var description: String {
        "\(dtype)" + (shuffle ? "+shuffle" : "") + (compression == .none ? "" : "+\(compression.rawValue)")
    }
}

/// In profiles and results.json a codec is `{dtype: "f32"|"f16"|"bf16", shuffle: Bool, lz4: "on"|"off"|"auto"}`.
extension ShardOptions: Codable {
    enum CodingKeys: String, CodingKey { case dtype, shuffle, lz4 }

    /// The `lz4` key's values, in the order of `CompressionMode`'s cases none, lz4, auto.
    public static let lz4Names: [CompressionMode: String] = [.none: "off", .lz4: "on", .auto: "auto"]

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = try c.decode(String.self, forKey: .dtype), z = try c.decode(String.self, forKey: .lz4)
        guard let dtype = ShardDType.allCases.first(where: { $0.description == d }) else {
            throw DecodingError.dataCorruptedError(forKey: .dtype, in: c, debugDescription: "expected f32, f16 or bf16, found \(d)")
        }
        guard let mode = Self.lz4Names.first(where: { $0.value == z })?.key else {
            throw DecodingError.dataCorruptedError(forKey: .lz4, in: c, debugDescription: "expected on, off or auto, found \(z)")
        }
        self.init(dtype: dtype, shuffle: try c.decode(Bool.self, forKey: .shuffle), compression: mode)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(dtype.description, forKey: .dtype)
        try c.encode(shuffle, forKey: .shuffle)
        try c.encode(Self.lz4Names[compression]!, forKey: .lz4)
    }
}
