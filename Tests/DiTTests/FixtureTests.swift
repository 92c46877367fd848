import Foundation
import XCTest
@testable import DiT
import Tensor

/// The engine against the independent numpy reference (tools/dit_reference.py, fixtures written by
/// tools/make_dit_fixtures.py). Tolerance: max |engine − reference| ≤ 1e-4 · max |reference| per case (the
/// reference computes in Float64; Float32 legitimately differs by ~3e-7 of that scale); routing must be identical,
/// gate weights within 1e-5 absolute. Every case runs under both GEMM backends (OpenBLAS, and oneDNN with the GEMM
/// matrices packed as FP32 at load).
final class FixtureTests: XCTestCase {
    static let fixtures = Bundle.module.resourceURL!.appendingPathComponent("Fixtures")

    func fixture(_ name: String) -> URL { Self.fixtures.appendingPathComponent(name) }

    func runCase(_ name: String, threads: Int = 1, file: StaticString = #filePath, line: UInt = #line) throws {
        let saved = GEMMBackend.current
        defer { GEMMBackend.current = saved }
        for backend in GEMMBackend.allCases where backend == .openblas || DNNL.isAvailable {
            GEMMBackend.current = backend
            try runCase(name, threads: threads, backend: backend, file: file, line: line)
        }
    }

    func runCase(_ name: String, threads: Int, backend: GEMMBackend, file: StaticString, line: UInt) throws {
        let name = "\(name) [\(backend.rawValue)]"
        let dir = fixture(String(name.prefix { $0 != " " }))
        let config = try DiTConfig.load(jsonFile: dir.appendingPathComponent("config.json").path)
        let meta = try JSONDecoder().decode([String: JSONValue].self,
                                            from: Data(contentsOf: dir.appendingPathComponent("meta.json")))
        var cfgScale: Float?
        if case let .number(s)? = meta["cfg_scale"] { cfgScale = Float(s) }
        Parallel.threads = threads
        defer { Parallel.threads = 1 }
        let model = try DiTModel(config: config, source: .safetensors(path: dir.appendingPathComponent("weights.safetensors").path))
        // Under oneDNN the large GEMMs must really run on packed weights, not fall back to the stored ones.
        XCTAssertEqual(model.weights.packingSummary != nil, backend == .onednn, "\(name): \(model.weights.packingSummary ?? "not packed")",
                       file: file, line: line)
        let input = try ForwardInput.load(path: dir.appendingPathComponent("input.safetensors").path, config: config)
        let result = try ForwardResult.run(model: model, input: input, cfgScale: cfgScale)
        if backend == .onednn {
            XCTAssertEqual(DNNL.referenceKernelShapes, [], "\(name): oneDNN fell back to its reference kernel", file: file, line: line)
        }
        let expected = try SafetensorsFile(path: dir.appendingPathComponent("expected.safetensors").path)

        let ref = try expected.floats("out")
        XCTAssertEqual(result.outShape, expected["out"]!.shape, file: file, line: line)
        let scale = ref.map { abs($0) }.max()!
        let err = zip(result.out, ref).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(err / scale, 1e-4, "\(name): max |Δ| / max |ref| = \(err / scale)", file: file, line: line)

        if config.isMoE {
            let routing = try XCTUnwrap(result.routing, file: file, line: line)
            XCTAssertEqual(routing.experts.count, config.depth, file: file, line: line)
            for layer in 0..<config.depth {
                let ids = try expected.integers("routing.\(layer).experts").map(Int32.init)
                XCTAssertEqual(routing.experts[layer], ids, "\(name): routing of layer \(layer)", file: file, line: line)
                let w = try expected.floats("routing.\(layer).weights")
                let werr = zip(routing.weights[layer]!, w).map { abs($0 - $1) }.max()!
                XCTAssertLessThanOrEqual(werr, 1e-5, "\(name): gate weights of layer \(layer)", file: file, line: line)
            }
        }
    }

    func testMoETimmLayout() throws { try runCase("moe_timm") }
    func testMoEFlashLayoutWithQKNorm() throws { try runCase("moe_flash") }
    func testDenseDiT() throws { try runCase("dense") }
    func testClassifierFreeGuidanceForward() throws { try runCase("moe_cfg") }
    func testPatchSize4() throws { try runCase("moe_p4") }
    func testF16StoredWeights() throws { try runCase("moe_f16") }
    func testBF16StoredWeights() throws { try runCase("moe_bf16") }

    func testBatch16() throws { try runCase("moe_batch16") }

    /// Two workers split GEMM rows, attention heads, experts (one expert's rows across both workers), the shared
    /// expert and the per-worker widening scratch of BF16/F16 weights; results must not change. The batch-16 cases
    /// have 512 expert rows, enough for every parallel path to use both workers.
    func testTwoWorkersGiveTheSameResult() throws {
        for name in ["moe_timm", "moe_flash", "dense", "moe_f16", "moe_bf16", "moe_batch16", "moe_batch16_bf16"] {
            try runCase(name, threads: 2)
        }
    }
}
