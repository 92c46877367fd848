import Crypto
import Formats
import Foundation

/// The images an FID is computed from, read in batches of uint8 NCHW RGB:
/// - a directory of PNG files (`*.png`, not recursive, in byte order of their names; pytorch-fid also reads only
///   the top level). Other image files (JPEG, BMP, …) are refused rather than skipped, since pytorch-fid would count
///   them; other files (e.g. a `ckpt.pt`) are ignored. Images may differ in size: each runs at its own size and
///   Inception resizes it to 299².
/// - a `.npz` whose `arr_0` is uint8 [N, H, W, 3] (NHWC), what ADM's and DiT's `sample_ddp.py` write. STORED
///   (`np.savez`) arrays are read in place from the memory-mapped file, compressed ones are inflated once.
public final class ImageSet {
    public enum Source {
        case pngFiles([String])
        case npzImages(NumpyArchive, name: String)
    }

    public let path: String
    public let source: Source
    public let count: Int

    static let otherImageExtensions: Set<String> = ["jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff", "pgm", "ppm"]

    public init(path: String) throws {
        self.path = path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw FIDError(file: path, "no such file or directory") }
        if isDir.boolValue {
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
                throw FIDError(file: path, "cannot list the directory: \(error.localizedDescription)")
            }
            if let other = names.sorted().first(where: { Self.otherImageExtensions.contains(($0 as NSString).pathExtension.lowercased()) }) {
                throw FIDError(file: (path as NSString).appendingPathComponent(other),
                               "only PNG images are decoded (no JPEG/other decoder); convert the folder to PNG")
            }
            let pngs = names.filter { ($0 as NSString).pathExtension.lowercased() == "png" }
                .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            guard !pngs.isEmpty else { throw FIDError(file: path, "the directory holds no *.png images") }
            source = .pngFiles(pngs.map { (path as NSString).appendingPathComponent($0) })
            count = pngs.count
        } else {
            let archive: NumpyArchive
            do { archive = try NumpyArchive(path: path) } catch {
                throw FIDError(file: path, "expected a directory of PNG images or a .npz with arr_0 uint8 [N, H, W, 3]: \(error)")
            }
            guard archive.contains("arr_0") else {
                throw FIDError(file: path, "no image array 'arr_0' (arrays: \(archive.names.joined(separator: ", "))); expected uint8 [N, H, W, 3]")
            }
            let (dtype, shape) = try Self.layout(archive, "arr_0")
            guard dtype == .uint8, shape.count == 4, shape[3] == 3, shape[0] > 0 else {
                throw FIDError(file: path, "'arr_0' is \(dtype.rawValue) \(shape); expected uint8 [N, H, W, 3] (NHWC RGB)")
            }
            source = .npzImages(archive, name: "arr_0")
            count = shape[0]
        }
    }

    static func layout(_ a: NumpyArchive, _ name: String) throws -> (NumpyArray.DType, [Int]) {
        guard let e = a.zip.entry(name + ".npy") else { throw FIDError(file: a.path, "no array '\(name)'") }
        if let r = try a.zip.storedRange(e) {
            let h = try a.zip.data.withUnsafeBytes { try NumpyArray.header(UnsafeRawBufferPointer(rebasing: $0[r]), file: "\(a.path)[\(name)]") }
            return (h.dtype, h.shape)
        }
        let arr = try a.array(name)
        return (arr.dtype, arr.shape)
    }

    /// SHA-256 of what the images are: every PNG file's name (relative) and bytes, or the `.npz` entry's bytes as
    /// stored (CRC-checked when the images are read).
    public func contentDigest() throws -> String {
        var h = SHA256()
        switch source {
        case .pngFiles(let files):
            h.update(data: Data("png-folder\n".utf8))
            for f in files {
                guard let d = FileManager.default.contents(atPath: f) else { throw FIDError(file: f, "cannot read the file") }
                h.update(data: Data("\((f as NSString).lastPathComponent)\n\(d.count)\n".utf8))
                h.update(data: d)
            }
        case .npzImages(let a, let name):
            let e = a.zip.entry(name + ".npy")!
            h.update(data: Data("npz-arr_0\n\(e.uncompressedSize)\n\(e.crc32)\n".utf8))
            if let r = try a.zip.storedRange(e) { h.update(data: a.zip.data[r]) } else { h.update(data: try a.zip.contents(e)) }
        }
        return h.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Calls `body(pixels, n, height, width)` with consecutive runs of at most `batch` images of one size, uint8
    /// [n, 3, height, width]. Images are visited in order; `body` sees each exactly once.
    public func forEachBatch(_ batch: Int, _ body: (UnsafePointer<UInt8>, Int, Int, Int) throws -> Void) throws {
        precondition(batch > 0)
        switch source {
        case .pngFiles(let files):
            var buffer = [UInt8](), n = 0, size = (0, 0)
            func flush() throws {
                if n > 0 { try buffer.withUnsafeBufferPointer { try body($0.baseAddress!, n, size.0, size.1) } }
                n = 0
            }
            for f in files {
                let img: PNGImage
                do { img = try PNGImage(path: f) } catch let e as PNGError { throw FIDError(file: e.file, e.reason) }
                if n > 0 && (img.height, img.width) != size { try flush() }
                size = (img.height, img.width)
                let per = 3 * img.height * img.width
                if buffer.count < batch * per { buffer = [UInt8](repeating: 0, count: batch * per) }
                buffer.withUnsafeMutableBufferPointer { Self.hwcToCHW(img.rgb, into: $0.baseAddress! + n * per, height: img.height, width: img.width) }
                n += 1
                if n == batch { try flush() }
            }
            try flush()
        case .npzImages(let a, let name):
            let e = a.zip.entry(name + ".npy")!
            let (_, shape) = try Self.layout(a, name)
            let h = shape[1], w = shape[2], per = 3 * h * w
            var chw = [UInt8](repeating: 0, count: batch * per)
            func run(_ all: UnsafeRawBufferPointer) throws {
                var done = 0
                while done < count {
                    let n = min(batch, count - done)
                    chw.withUnsafeMutableBufferPointer { out in
                        for i in 0..<n {
                            Self.hwcToCHW(UnsafeRawBufferPointer(rebasing: all[((done + i) * per)..<((done + i + 1) * per)]),
                                          into: out.baseAddress! + i * per, height: h, width: w)
                        }
                    }
                    try chw.withUnsafeBufferPointer { try body($0.baseAddress!, n, h, w) }
                    done += n
                }
            }
            if let r = try a.zip.storedRange(e) {
                try a.zip.data.withUnsafeBytes { b in
                    let hdr = try NumpyArray.header(UnsafeRawBufferPointer(rebasing: b[r]), file: "\(a.path)[\(name)]")
                    let start = r.lowerBound + hdr.dataOffset
                    guard r.upperBound - start == count * per else {
                        throw FIDError(file: a.path, "'\(name)': \(r.upperBound - start) data bytes, [\(count), \(h), \(w), 3] needs \(count * per)")
                    }
                    try run(UnsafeRawBufferPointer(rebasing: b[start..<r.upperBound]))
                }
            } else {
                let arr = try a.array(name)
                try arr.bytes.withUnsafeBytes { try run($0) }
            }
        }
    }

    /// [h, w, 3] → [3, h, w].
    static func hwcToCHW<S: Collection>(_ src: S, into dst: UnsafeMutablePointer<UInt8>, height h: Int, width w: Int)
    where S.Element == UInt8, S.Index == Int {
        let plane = h * w, base = src.startIndex
        for p in 0..<plane {
            dst[p] = src[base + 3 * p]; dst[plane + p] = src[base + 3 * p + 1]; dst[2 * plane + p] = src[base + 3 * p + 2]
        }
    }
}
