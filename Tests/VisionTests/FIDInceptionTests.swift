import DiT
import Foundation
import Tensor
import XCTest
@testable import Vision

/// pytorch-fid's InceptionV3 pool3 features on deterministic weights (tools/make_inception_fixtures.py writes the
/// reference; both sides generate every tensor from its name, see `deterministicValue`).
final class FIDInceptionTests: XCTestCase {
    func fixture(_ name: String) -> String { Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil)!.path }

    /// 64-bit FNV-1a of the UTF-8 bytes.
    static func fnv1a64(_ s: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h
    }

    /// The fixture script's rule for tensor `name` (Float32 arithmetic in the same order as its numpy code).
    static func deterministicValue(_ name: String, _ shape: [Int]) -> [Float] {
        var rng = SplitMix64(seed: fnv1a64(name))
        let n = shape.reduce(1, *)
        // value = a · v + b with v = 2u − 1: the same Float32 operations as the script (a·v, then + b).
        let a: Float, b: Float
        if name.hasSuffix(".conv.weight") {
            a = Float((6.0 / Double(shape.dropFirst().reduce(1, *))).squareRoot()); b = 0
        } else if name.hasSuffix(".bn.weight") {
            a = 0.1; b = 1
        } else if name.hasSuffix(".bn.running_var") {
            a = 0.2; b = 1
        } else if name.hasSuffix(".bn.bias") || name.hasSuffix(".bn.running_mean") {
            a = 0.1; b = 0
        } else {
            fatalError("no rule for \(name)")
        }
        return [Float](unsafeUninitializedCapacity: n) { p, count in
            for i in 0..<n { p[i] = a * (2 * rng.nextUnitFloat() - 1) + b }
            count = n
        }
    }

    // Tolerance 1e-4 relative to max |feature| against pytorch-fid in float64 (its own float32 run is 5.5e-7 away,
    // see meta.json), 2 images of 64×48 (so the resize to 299 runs), 2 workers, the default GEMM backend.
    func testPool3FeaturesMatchPytorchFID() throws {
        let saved = Parallel.threads
        Parallel.threads = 2
        defer { Parallel.threads = saved }
        let weights = try FIDInceptionWeights(source: Self.deterministicValue)
        let io = try SafetensorsFile(path: fixture("fid_inception") + "/io.safetensors")
        let shape = io["images"]!.shape
        let images = try io.floats("images"), expected = try io.floats("pool3")
        let net = FIDInception(weights: weights, imageHeight: shape[2], imageWidth: shape[3], maxBatch: 2)
        // The fixture's images are uint8 levels / 255: the uint8 entry point (÷255, then the float path) is checked.
        let pixels = images.map { UInt8(($0 * 255).rounded()) }
        var out = [Float](repeating: .nan, count: shape[0] * FIDInception.featureCount)
        net.features(pixels: pixels, batch: shape[0], into: &out)
        let scale = Double(expected.map(abs).max()!)
        let err = zip(out, expected).map { Double(abs($0 - $1)) }.max()! / scale
        XCTAssertLessThanOrEqual(err, 1e-4, "max |Δ| / max |ref| = \(err)")
    }

    // BF16 convolution GEMMs (oneDNN) against the FP32 features on the fixture's two images. Measured on 2026-12-03:
    // max |Δ| / max |FP32| 4.1e-3, ‖Δ‖₂/‖FP32‖₂ 3.7e-3; tolerance 2e-2 (up to 17 convs deep, each GEMM input rounded
    // to 8 significant bits).
    func testBF16FeaturesAgainstFP32() throws {
        guard DNNL.isAvailable else { throw XCTSkip("oneDNN has no CPU engine here") }
        let savedThreads = Parallel.threads, savedBackend = GEMMBackend.current
        Parallel.threads = 2
        GEMMBackend.current = .onednn
        defer { Parallel.threads = savedThreads; GEMMBackend.current = savedBackend }
        let weights = try FIDInceptionWeights(source: Self.deterministicValue)
        let io = try SafetensorsFile(path: fixture("fid_inception") + "/io.safetensors")
        let shape = io["images"]!.shape
        let pixels = try io.floats("images").map { UInt8(($0 * 255).rounded()) }
        var fp32 = [Float](repeating: .nan, count: shape[0] * FIDInception.featureCount), bf16 = fp32
        FIDInception(weights: weights, imageHeight: shape[2], imageWidth: shape[3], maxBatch: 2)
            .features(pixels: pixels, batch: shape[0], into: &fp32)
        let net = FIDInception(weights: weights, imageHeight: shape[2], imageWidth: shape[3], maxBatch: 2, precision: .bf16)
        XCTAssertEqual(net.precision, .bf16)
        net.features(pixels: pixels, batch: shape[0], into: &bf16)
        let scale = Double(fp32.map(abs).max()!)
        let err = zip(bf16, fp32).map { Double(abs($0 - $1)) }.max()! / scale
        let l2 = (zip(bf16, fp32).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +) / fp32.map { Double($0) * Double($0) }.reduce(0, +)).squareRoot()
        XCTAssertLessThanOrEqual(err, 2e-2, "BF16 vs FP32 max |Δ| / max |FP32| = \(err)")
        XCTAssertGreaterThan(err, 0, "the BF16 network gave the FP32 floats; did it run BF16?")
        print("BF16 Inception: max |Δ| / max |FP32| = \(err), ‖Δ‖₂/‖FP32‖₂ = \(l2)")
    }

    // 21,785,568 parameters up to pool3 (conv weights and BatchNorm affine; pytorch-fid's
    // sum(p.numel() for p in InceptionV3([3]).parameters())), 94 BasicConv2d layers.
    func testExpectedTensorsMatchPytorchFIDParameterCount() {
        let tensors = FIDInceptionWeights.expectedTensors()
        XCTAssertEqual(tensors.filter { $0.name.hasSuffix(".conv.weight") }.count, 94)
        let params = tensors.filter { !$0.name.contains("running_") }.reduce(0) { $0 + $1.shape.reduce(1, *) }
        XCTAssertEqual(params, 21_785_568)
    }

    func testLoaderNamesMissingKeyAndWrongShape() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("moebench-inception-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("w.safetensors").path
        var w = SafetensorsWriter()
        w.add("fc.weight", shape: [2], floats: [0, 0])
        try w.write(to: path)
        XCTAssertThrowsError(try FIDInceptionWeights(file: SafetensorsFile(path: path))) {
            XCTAssertEqual("\($0)", "\(path): missing tensor 'Conv2d_1a_3x3.conv.weight' (expected shape [32, 3, 3, 3])")
        }
        w = SafetensorsWriter()
        w.add("Conv2d_1a_3x3.conv.weight", shape: [32, 3, 9], floats: [Float](repeating: 0, count: 864))
        try w.write(to: path)
        XCTAssertThrowsError(try FIDInceptionWeights(file: SafetensorsFile(path: path))) {
            XCTAssertEqual("\($0)", "\(path): tensor 'Conv2d_1a_3x3.conv.weight' has shape [32, 3, 9], expected [32, 3, 3, 3]")
        }
    }
}
