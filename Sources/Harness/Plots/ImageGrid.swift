import Foundation

/// A grid of small grey images as a PNG (8-bit greyscale, zlib "stored" blocks — no compression library needed,
/// and at a few hundred bytes per digit the size does not matter). Pixel values in [0, 1] (clamped), 0 = black.
public struct ImageGrid {
    public let side: Int          // image side in pixels
    public let columns: Int
    public let scale: Int         // each pixel drawn as scale × scale
    public let gap: Int           // pixels (after scaling) between images, drawn mid-grey

    public init(side: Int, columns: Int, scale: Int = 4, gap: Int = 2) {
        self.side = side; self.columns = columns; self.scale = scale; self.gap = gap
    }

    /// `images` is `[n, side·side]` row-major.
    public func png(_ images: [Float]) -> Data {
        let per = side * side, n = images.count / per
        let rows = max(1, (n + columns - 1) / columns)
        let cell = side * scale + gap
        let width = columns * cell + gap, height = rows * cell + gap
        var pixels = [UInt8](repeating: 128, count: width * height)
        for i in 0..<n {
            let ox = gap + (i % columns) * cell, oy = gap + (i / columns) * cell
            for y in 0..<(side * scale) {
                for x in 0..<(side * scale) {
                    let v = images[i * per + (y / scale) * side + x / scale]
                    pixels[(oy + y) * width + ox + x] = UInt8((min(max(v.isFinite ? v : 0, 0), 1) * 255).rounded())
                }
            }
        }
        return PNG.greyscale(width: width, height: height, pixels: pixels)
    }
}

enum PNG {
    static func greyscale(width: Int, height: Int, pixels: [UInt8]) -> Data {
        var raw = Data(capacity: (width + 1) * height)
        for y in 0..<height {
            raw.append(0)  // filter: none
            raw.append(contentsOf: pixels[(y * width)..<((y + 1) * width)])
        }
        var out = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        var ihdr = Data()
        ihdr.append(bigEndian: UInt32(width)); ihdr.append(bigEndian: UInt32(height))
        ihdr.append(contentsOf: [8, 0, 0, 0, 0])  // 8-bit, greyscale, deflate, no filter, no interlace
        chunk("IHDR", ihdr, into: &out)
        chunk("IDAT", zlibStored(raw), into: &out)
        chunk("IEND", Data(), into: &out)
        return out
    }

    /// A zlib stream of uncompressed deflate blocks (≤ 65,535 bytes each) with its Adler-32.
    static func zlibStored(_ data: Data) -> Data {
        var z = Data([0x78, 0x01])
        var offset = 0
        repeat {
            let n = min(65_535, data.count - offset)
            z.append(offset + n == data.count ? 1 : 0)
            z.append(UInt8(n & 0xFF)); z.append(UInt8(n >> 8))
            z.append(UInt8(~n & 0xFF)); z.append(UInt8((~n >> 8) & 0xFF))
            z.append(data[(data.startIndex + offset)..<(data.startIndex + offset + n)])
            offset += n
        } while offset < data.count
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in data { a = (a + UInt32(byte)) % 65_521; b = (b + a) % 65_521 }
        z.append(bigEndian: (b << 16) | a)
        return z
    }

    static func chunk(_ type: String, _ body: Data, into out: inout Data) {
        out.append(bigEndian: UInt32(body.count))
        var typed = Data(type.utf8)
        typed.append(body)
        out.append(typed)
        out.append(bigEndian: crc32(typed))
    }

    /// CRC-32 (ISO 3309, reflected, polynomial 0xEDB88320) as PNG requires.
    static func crc32(_ data: Data) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for byte in data {
            c ^= UInt32(byte)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return c ^ 0xFFFF_FFFF
    }
}

extension Data {
    mutating func append(bigEndian v: UInt32) {
        append(contentsOf: [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)])
    }
}
