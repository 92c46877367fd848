import Foundation
import XCTest
@testable import DiT
import Tensor

/// BF16 inference (weights converted at load, BF16 GEMM inputs, FP32 accumulation; norms, softmax, gating and
/// routing in FP32) against FP32 inference of the same weights, both on oneDNN.
///
/// Measured (oneDNN 2.6.3, this file's cases):
/// - fixtures: output max |Δ| / max |FP32| 3.1e-3 … 7.5e-3, ‖Δ‖₂ / ‖FP32‖₂ 2.9e-3 … 5.0e-3, top-k expert sets
///   differing for 0 of 1072 (layer, token) pairs;
/// - seeded random DiT-MoE-S/2-8E2A-shaped models (D 384, 6 heads, 8 experts, top-2, depth 4, 64 tokens, batch 2,
///   seeds 1–3): max 4.0e-3 … 4.0e-2, RMS 3.9e-3 … 6.2e-3, top-k differing for 0 … 0.2% (1 of 512).
/// Asserted: fixtures max ≤ 1.5e-2, RMS ≤ 1e-2; random max ≤ 8e-2, RMS ≤ 1.2e-2; top-k sets differing for at most
/// 1% of the pairs of each group (about 2× the measured errors; 5× the measured routing flips).
final class BF16Tests: XCTestCase {
    static let fixtures = Bundle.module.resourceURL!.appendingPathComponent("Fixtures")

    /// Output of both precisions and the routing of both.
    struct Comparison {
        var relativeError: Double       // max |bf16 − fp32| / max |fp32|
        var relativeRMS: Double         // ‖bf16 − fp32‖₂ / ‖fp32‖₂
        var topKDiffering: Double       // fraction of (layer, token) whose top-k expert set differs
        var tokens: Int
    }

    override func setUpWithError() throws {
        try XCTSkipUnless(DNNL.isAvailable, "no oneDNN CPU engine")
    }

    func compare(config: DiTConfig, source: WeightSource, input: ForwardInput, cfgScale: Float?) throws -> Comparison {
        let saved = GEMMBackend.current
        GEMMBackend.current = .onednn
        defer { GEMMBackend.current = saved }
        var results: [ForwardResult] = []
        for p in ComputePrecision.allCases {
            let weights = try DiTWeights(config: config, source: source, precision: p)
            XCTAssertNotNil(weights.packingSummary)
            if p == .bf16 { XCTAssertTrue(weights.packingSummary!.contains("BF16"), weights.packingSummary!) }
            results.append(try ForwardResult.run(model: DiTModel(weights: weights), input: input, cfgScale: cfgScale))
        }
        let (f, b) = (results[0], results[1])
        let scale = f.out.map { abs(Double($0)) }.max()!
        let err = zip(f.out, b.out).map { abs(Double($0) - Double($1)) }.max()!
        var differing = 0, total = 0
        if config.isMoE {
            let k = config.numExpertsPerTok
            for layer in 0..<config.depth {
                let a = f.routing!.experts[layer]!, c = b.routing!.experts[layer]!
                for t in 0..<(a.count / k) {
                    total += 1
                    if Set(a[(t * k)..<((t + 1) * k)]) != Set(c[(t * k)..<((t + 1) * k)]) { differing += 1 }
                }
            }
        }
        var d2 = 0.0, r2 = 0.0
        for i in 0..<f.out.count {
            let r = Double(f.out[i]), d = Double(b.out[i]) - r
            d2 += d * d; r2 += r * r
        }
        return Comparison(relativeError: err / scale, relativeRMS: (d2 / r2).squareRoot(), topKDiffering: total > 0 ? Double(differing) / Double(total) : 0,
                          tokens: total)
    }

    func testBF16AgainstFP32OnTheFixtures() throws {
        var differing = 0.0, tokens = 0
        for name in ["moe_timm", "moe_flash", "dense", "moe_cfg", "moe_p4", "moe_f16", "moe_bf16", "moe_batch16"] {
            let dir = Self.fixtures.appendingPathComponent(name)
            let config = try DiTConfig.load(jsonFile: dir.appendingPathComponent("config.json").path)
            let meta = try JSONDecoder().decode([String: JSONValue].self, from: Data(contentsOf: dir.appendingPathComponent("meta.json")))
            var cfgScale: Float?
            if case let .number(s)? = meta["cfg_scale"] { cfgScale = Float(s) }
            let input = try ForwardInput.load(path: dir.appendingPathComponent("input.safetensors").path, config: config)
            let c = try compare(config: config, source: .safetensors(path: dir.appendingPathComponent("weights.safetensors").path),
                                input: input, cfgScale: cfgScale)
            print(String(format: "BF16 vs FP32, fixture %@: relative error %.2e (RMS %.2e), top-k differing %.4f of %d", name, c.relativeError, c.relativeRMS, c.topKDiffering, c.tokens))
            XCTAssertLessThanOrEqual(c.relativeError, 1.5e-2, "\(name)")
            XCTAssertLessThanOrEqual(c.relativeRMS, 1e-2, "\(name)")
            differing += c.topKDiffering * Double(c.tokens); tokens += c.tokens
        }
        XCTAssertLessThanOrEqual(differing / Double(tokens), 0.01)
    }

    func testBF16AgainstFP32OnSeededDiTMoESShapedModels() throws {
        var config = try DiTConfig.named("DiT-MoE-S/2-8E2A")
        config.depth = 4; config.inputSize = 16
        let image = config.inChannels * config.inputSize * config.inputSize
        var worstErr = 0.0, worstRMS = 0.0, worstTopK = 0.0
        for seed in [1, 2, 3] as [UInt64] {
            var rng = SplitMix64(seed: seed &* 977)
            let x = (0..<(2 * image)).map { _ in 2 * rng.nextUnitFloat() - 1 }
            let input = ForwardInput(x: x, t: [20, 700], y: [Int32(seed * 13 % 1000), 1000], batch: 2)
            let c = try compare(config: config, source: .random(seed: seed), input: input, cfgScale: nil)
            print(String(format: "BF16 vs FP32, random seed %llu: relative error %.2e (RMS %.2e), top-k differing %.4f of %d", seed, c.relativeError, c.relativeRMS, c.topKDiffering, c.tokens))
            worstErr = max(worstErr, c.relativeError); worstRMS = max(worstRMS, c.relativeRMS)
            worstTopK = max(worstTopK, c.topKDiffering)
        }
        XCTAssertLessThanOrEqual(worstErr, 8e-2)
        XCTAssertLessThanOrEqual(worstRMS, 1.2e-2)
        XCTAssertLessThanOrEqual(worstTopK, 0.01)
    }

    /// BF16 needs oneDNN: with OpenBLAS selected, loading in BF16 is an error naming the flag.
    func testBF16WithOpenBLASIsAClearError() throws {
        let saved = GEMMBackend.current
        GEMMBackend.current = .openblas
        defer { GEMMBackend.current = saved }
        var config = try DiTConfig.named("DiT-MoE-S/2-8E2A")
        config.depth = 1; config.inputSize = 8
        XCTAssertThrowsError(try DiTWeights(config: config, source: .random(seed: 1), precision: .bf16)) { e in
            XCTAssertTrue("\(e)".contains("--precision"), "\(e)")
        }
        XCTAssertThrowsError(try ComputePrecision.parse("bf16")) { e in XCTAssertTrue("\(e)".contains("--gemm onednn"), "\(e)") }
    }
}
