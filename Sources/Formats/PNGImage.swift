import Foundation

// PNG decoding (ISO/IEC 15948) to 8-bit RGB, as PIL's `Image.open(f).convert('RGB')` gives pytorch-fid: gray is
// replicated to the three channels, the alpha channel is dropped (not composited), palette indices are looked up.
// Read: bit depth 8 for gray, gray+alpha, RGB, RGBA and palette, and bit depths 1, 2, 4 for gray and palette;
// non-interlaced only. Every chunk's CRC-32 and the zlib stream's Adler-32 are checked.

public struct PNGError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let reason: String
    public init(file: String, _ reason: String) { self.file = file; self.reason = reason }
    public var description: String { "\(file): \(reason)" }
}

public struct PNGImage {
    public let width: Int
    public let height: Int
    /// RGB bytes, row-major [height, width, 3].
    public let rgb: [UInt8]

    public init(path: String) throws {
        guard let d = FileManager.default.contents(atPath: path) else { throw PNGError(file: path, "cannot read the file") }
        try self.init(data: [UInt8](d), file: path)
    }

    public init(data: [UInt8], file: String) throws {
        func fail(_ s: String) -> PNGError { PNGError(file: file, s) }
        let signature: [UInt8] = [137, 80, 78, 71, 13, 10, 26, 10]
        guard data.count >= 8, Array(data[0..<8]) == signature else { throw fail("not a PNG file (bad signature)") }
        func be32(_ o: Int) -> Int { Int(data[o]) << 24 | Int(data[o + 1]) << 16 | Int(data[o + 2]) << 8 | Int(data[o + 3]) }
        var p = 8
        var w = 0, h = 0, depth = 0, colour = -1, interlace = 0
        var idat = [UInt8](), palette = [UInt8]()
        var sawEnd = false
        while p + 12 <= data.count {
            let len = be32(p)
            let type = String(decoding: data[(p + 4)..<(p + 8)], as: UTF8.self)
            guard len >= 0, p + 12 + len <= data.count else { throw fail("chunk \(type) is truncated") }
            let crc = data.withUnsafeBytes { CRC32.update(0, UnsafeRawBufferPointer(rebasing: $0[(p + 4)..<(p + 8 + len)])) }
            guard crc == UInt32(be32(p + 8 + len)) else { throw fail("chunk \(type): CRC-32 mismatch (the file is corrupt)") }
            let body = p + 8
            switch type {
            case "IHDR":
                guard len == 13 else { throw fail("IHDR of \(len) bytes (expected 13)") }
                w = be32(body); h = be32(body + 4); depth = Int(data[body + 8]); colour = Int(data[body + 9])
                guard data[body + 10] == 0, data[body + 11] == 0 else { throw fail("unknown compression or filter method") }
                interlace = Int(data[body + 12])
            case "PLTE": palette = Array(data[body..<(body + len)])
            case "IDAT": idat += data[body..<(body + len)]
            case "IEND": sawEnd = true
            default: break
            }
            p += 12 + len
            if sawEnd { break }
        }
        guard colour >= 0 else { throw fail("no IHDR chunk") }
        guard sawEnd else { throw fail("no IEND chunk (the file is truncated)") }
        guard interlace == 0 else { throw fail("interlaced (Adam7) PNGs are not read; re-save it non-interlaced") }
        guard w > 0, h > 0, w <= 1 << 16, h <= 1 << 16 else { throw fail("image size \(w)×\(h) is out of range") }
        let channels: Int
        switch (colour, depth) {
        case (0, 1), (0, 2), (0, 4), (0, 8), (3, 1), (3, 2), (3, 4), (3, 8): channels = 1
        case (4, 8): channels = 2
        case (2, 8): channels = 3
        case (6, 8): channels = 4
        default: throw fail("colour type \(colour) at bit depth \(depth) is not read (8-bit gray/RGB/RGBA/palette, or 1/2/4-bit gray/palette)")
        }
        if colour == 3 && (palette.isEmpty || palette.count % 3 != 0) { throw fail("palette image without a valid PLTE chunk") }
        let rowBytes = (w * channels * depth + 7) / 8, bpp = max(1, channels * depth / 8)
        let raw: [UInt8]
        do { raw = try idat.withUnsafeBytes { try Inflate.zlibDecompress($0, sizeHint: h * (rowBytes + 1)) } } catch let e as InflateError {
            throw fail("image data: \(e)")
        }
        guard raw.count == h * (rowBytes + 1) else {
            throw fail("image data has \(raw.count) bytes, \(w)×\(h) needs \(h * (rowBytes + 1))")
        }
        var rows = [UInt8](repeating: 0, count: h * rowBytes)
        try raw.withUnsafeBufferPointer { src in
            try rows.withUnsafeMutableBufferPointer { dst in
                for y in 0..<h {
                    let filter = src[y * (rowBytes + 1)]
                    let s = src.baseAddress! + y * (rowBytes + 1) + 1, o = dst.baseAddress! + y * rowBytes
                    let up: UnsafePointer<UInt8>? = y > 0 ? UnsafePointer(o - rowBytes) : nil
                    try Self.unfilter(filter, s, o, up, count: rowBytes, bpp: bpp, file: file, row: y)
                }
            }
        }
        var rgb = [UInt8](repeating: 0, count: w * h * 3)
        rgb.withUnsafeMutableBufferPointer { out in
            for y in 0..<h {
                let r = y * rowBytes
                for x in 0..<w {
                    let o = (y * w + x) * 3
                    switch channels {
                    case 3, 4:
                        let i = r + x * channels
                        out[o] = rows[i]; out[o + 1] = rows[i + 1]; out[o + 2] = rows[i + 2]
                    case 2: let g = rows[r + x * 2]; out[o] = g; out[o + 1] = g; out[o + 2] = g
                    default:
                        // Sub-byte samples are packed MSB first; gray levels scale to 0…255 (PIL's rule).
                        let perByte = 8 / depth, shift = (perByte - 1 - x % perByte) * depth
                        let v = Int(rows[r + x / perByte] >> UInt8(shift)) & ((1 << depth) - 1)
                        if colour == 3 {
                            let k = min(v, palette.count / 3 - 1) * 3
                            out[o] = palette[k]; out[o + 1] = palette[k + 1]; out[o + 2] = palette[k + 2]
                        } else {
                            let g = UInt8(v * 255 / ((1 << depth) - 1))
                            out[o] = g; out[o + 1] = g; out[o + 2] = g
                        }
                    }
                }
            }
        }
        width = w; height = h; self.rgb = rgb
    }

    /// Reverses one scanline's filter (0 none, 1 sub, 2 up, 3 average, 4 Paeth); `up` nil on the first row (zeros).
    static func unfilter(_ filter: UInt8, _ s: UnsafePointer<UInt8>, _ o: UnsafeMutablePointer<UInt8>, _ up: UnsafePointer<UInt8>?,
                         count n: Int, bpp: Int, file: String, row: Int) throws {
        switch filter {
        case 0: o.update(from: s, count: n)
        case 1:
            for i in 0..<n { o[i] = s[i] &+ (i >= bpp ? o[i - bpp] : 0) }
        case 2:
            if let up { for i in 0..<n { o[i] = s[i] &+ up[i] } } else { o.update(from: s, count: n) }
        case 3:
            for i in 0..<n {
                let a = i >= bpp ? Int(o[i - bpp]) : 0, b = up.map { Int($0[i]) } ?? 0
                o[i] = s[i] &+ UInt8((a + b) >> 1)
            }
        case 4:
            for i in 0..<n {
                let a = i >= bpp ? Int(o[i - bpp]) : 0, b = up.map { Int($0[i]) } ?? 0
                let c = i >= bpp ? (up.map { Int($0[i - bpp]) } ?? 0) : 0
                let p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                o[i] = s[i] &+ UInt8(pa <= pb && pa <= pc ? a : pb <= pc ? b : c)
            }
        default: throw PNGError(file: file, "row \(row): unknown filter type \(filter)")
        }
    }
}
