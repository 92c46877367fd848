import Foundation
import DiT
import Tensor

/// The UCI handwritten digits (Alpaydin & Kaynak 1998, CC BY 4.0; `Resources/DIGITS-ATTRIBUTION.md`): 1,797 grey
/// 8×8 images with integer pixels 0...16 and labels 0...9, shipped with moebench.
///
/// Images are one channel `[1, 8, 8]`, pixels scaled by x = p/8 − 1 to [−1, 1]; sample i occupies
/// `pixels[i·64 ..< (i+1)·64]` in row-major order.
public struct DigitsDataset: Sendable {
    public static let side = 8
    public static let imageSize = 64
    public static let classes = 10

    public let pixels: [Float]
    public let labels: [Int32]
    public var count: Int { labels.count }

    public init(pixels: [Float], labels: [Int32]) {
        precondition(pixels.count == labels.count * Self.imageSize, "DigitsDataset: \(pixels.count) pixels for \(labels.count) labels")
        self.pixels = pixels; self.labels = labels
    }

    /// The shipped copy (`Resources/digits.csv`, inside the build's resource bundle).
    public static func bundled() throws -> DigitsDataset {
        guard let url = Bundle.module.url(forResource: "digits", withExtension: "csv", subdirectory: "Resources") else {
            throw DiTError.io(path: "Resources/digits.csv", reason: "the bundled digits data is missing from the build")
        }
        return try load(csv: url.path)
    }

    /// Reads a CSV of 65 integers a line (64 pixels 0...16, then the label 0...9); errors name the line and field.
    public static func load(csv path: String) throws -> DigitsDataset {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw DiTError.io(path: path, reason: "cannot read the file")
        }
        var pixels: [Float] = [], labels: [Int32] = []
        pixels.reserveCapacity(1800 * imageSize)
        // "\r\n" is one Character in Swift, so split on either form of line end.
        for (i, line) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            if line.isEmpty { continue }
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            guard fields.count == imageSize + 1 else {
                throw DiTError.badInput(path: path, field: "line \(i + 1)", reason: "expected 65 comma-separated integers (64 pixels, label), found \(fields.count) fields")
            }
            for (j, f) in fields.enumerated() {
                guard let v = Int(f.trimmingCharacters(in: .whitespaces)) else {
                    throw DiTError.badInput(path: path, field: "line \(i + 1), field \(j + 1)", reason: "'\(f)' is not an integer")
                }
                if j < imageSize {
                    guard (0...16).contains(v) else {
                        throw DiTError.badInput(path: path, field: "line \(i + 1), pixel \(j + 1)", reason: "\(v) outside 0...16")
                    }
                    pixels.append(Float(v) / 8 - 1)
                } else {
                    guard (0..<classes).contains(v) else {
                        throw DiTError.badInput(path: path, field: "line \(i + 1), label", reason: "\(v) outside 0...9")
                    }
                    labels.append(Int32(v))
                }
            }
        }
        guard !labels.isEmpty else { throw DiTError.badInput(path: path, field: "(file)", reason: "no samples") }
        return DigitsDataset(pixels: pixels, labels: labels)
    }

    /// Samples `indices` as a new data set.
    public func subset(_ indices: [Int]) -> DigitsDataset {
        var p: [Float] = [], l: [Int32] = []
        p.reserveCapacity(indices.count * Self.imageSize)
        for i in indices {
            p.append(contentsOf: pixels[i * Self.imageSize ..< (i + 1) * Self.imageSize]); l.append(labels[i])
        }
        return DigitsDataset(pixels: p, labels: l)
    }

    /// A fixed, seeded split stratified by class: from each class, `round(heldOut · n_class / n)` samples (largest
    /// remainders first so the total is exact) go to held-out, chosen by a seeded shuffle; both sides keep file
    /// order. The default (300 of 1,797, seed 0) is the split every moebench model and figure uses.
    public func split(heldOut: Int = 300, seed: UInt64 = 0) -> (train: DigitsDataset, heldOut: DigitsDataset) {
        precondition(heldOut > 0 && heldOut < count, "split: held-out count \(heldOut) of \(count)")
        var byClass: [[Int]] = Array(repeating: [], count: Self.classes)
        for (i, l) in labels.enumerated() { byClass[Int(l)].append(i) }
        let exact = byClass.map { Double(heldOut) * Double($0.count) / Double(count) }
        var quota = exact.map { Int($0.rounded(.down)) }
        let order = exact.indices.sorted { (exact[$0] - Double(quota[$0]), -$0) > (exact[$1] - Double(quota[$1]), -$1) }
        for c in order.prefix(heldOut - quota.reduce(0, +)) { quota[c] += 1 }
        var rng = SplitMix64(seed: seed ^ 0x6469_6769_7473)  // "digits"
        var held = Set<Int>()
        for (c, members) in byClass.enumerated() {
            var m = members
            for i in stride(from: m.count - 1, to: 0, by: -1) { m.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            held.formUnion(m.prefix(quota[c]))
        }
        let all = Array(0..<count)
        return (subset(all.filter { !held.contains($0) }), subset(all.filter { held.contains($0) }))
    }
}

/// The models moebench trained on the digits and ships (`Resources/models/<name>/`: `ema.safetensors` as F16,
/// `config.json`, `PROVENANCE.md` with the exact command, seed, steps and losses).
public enum LearnedModels {
    public static let names = ["digits-moe", "digits-dense", "digits-moe-alpha0", "digits-moe-noshared"]

    /// Directory of a shipped model, or nil when this build does not have it.
    public static func directory(_ name: String) -> URL? {
        Bundle.module.url(forResource: "ema", withExtension: "safetensors", subdirectory: "Resources/models/\(name)")?
            .deletingLastPathComponent()
    }

    public static func weightsPath(_ name: String) -> String? { directory(name)?.appendingPathComponent("ema.safetensors").path }
    public static func configPath(_ name: String) -> String? { directory(name)?.appendingPathComponent("config.json").path }
}
