import XCTest
@testable import Metrics

/// Parameter counts exactly as counted from upstream `models.py` (DiT-MoE Table 1, arXiv 2407.11633, rounds them);
/// GFLOPs within 0.01: paper GFLOPs = linear GMACs (Table 1's values), true FLOPs = 2 × (linear + attention MACs).
final class ModelCostTests: XCTestCase {
    static func shape(_ size: String, experts: Int = 0, topK: Int = 0, inputSize: Int = 32) -> ModelShape {
        let (l, d, h, flash): (Int, Int, Int, Bool) = switch size {
        case "S": (12, 384, 6, false)
        case "B": (12, 768, 12, false)
        case "L": (24, 1024, 16, false)
        case "XL": (28, 1152, 16, experts > 0)   // MoE XL/G use the flash layout; dense DiT-XL is timm
        default: (40, 1408, 16, experts > 0)     // G
        }
        return ModelShape(depth: l, hidden: d, heads: h, patchSize: 2, inputSize: inputSize, inChannels: 4,
                          numClasses: 1000, experts: experts, topK: topK, flashLayout: flash)
    }

    func testMoEParameterCountsExact() {
        let rows: [(String, Int, Int, Int)] = [
            ("S", 8, 199_307_552, 71_905_568),
            ("S", 16, 369_213_728, 71_942_432),
            ("B", 8, 795_861_536, 286_253_600),
            ("L", 8, 2_823_764_000, 1_011_824_672),
            ("XL", 8, 4_168_172_192, 1_492_730_528),
            ("G", 16, 16_503_731_232, 3_181_573_152),
        ]
        for (size, e, total, active) in rows {
            let c = ModelCost(Self.shape(size, experts: e, topK: 2))
            XCTAssertEqual(c.totalParameters, total, "\(size) \(e)E total")
            XCTAssertEqual(c.activatedParameters, active, "\(size) \(e)E activated")
        }
    }

    func testDenseParameterCounts() {
        // 32.96M · 130.5M · 458.1M · 675.1M (the DiT paper rounds to 33M · 130M · 458M · 675M); the S/2 count
        // checked by hand is 32,963,360.
        XCTAssertEqual(ModelCost(Self.shape("S")).totalParameters, 32_963_360)
        for (size, millions, tol) in [("S", 32.96, 0.005), ("B", 130.5, 0.05), ("L", 458.1, 0.05), ("XL", 675.1, 0.05)] {
            let c = ModelCost(Self.shape(size))
            XCTAssertEqual(Double(c.totalParameters) / 1e6, millions, accuracy: tol, size)
            XCTAssertEqual(c.activatedParameters, c.totalParameters)
        }
    }

    func testGFLOPsTable() {
        // (size, experts, paper GFLOPs = linear GMACs, attention GMACs, true GFLOPs)
        let rows: [(String, Int, Double, Double, Double)] = [
            ("S", 8, 15.43, 0.60, 32.06),
            ("S", 16, 15.44, 0.60, 32.08),
            ("B", 8, 61.68, 1.21, 125.77),
            ("L", 8, 219.26, 3.22, 444.96),
            ("XL", 8, 323.74, 4.23, 655.93),
            ("G", 16, 690.94, 7.38, 1396.65),
            ("S", 0, 5.45, 0.60, 12.11),
            ("B", 0, 21.80, 1.21, 46.01),
            ("L", 0, 77.48, 3.22, 161.40),
            ("XL", 0, 114.39, 4.23, 237.24),
        ]
        for (size, e, linear, attn, truth) in rows {
            let c = ModelCost(Self.shape(size, experts: e, topK: e > 0 ? 2 : 0))
            let name = "\(size) E=\(e)"
            XCTAssertEqual(c.paperGFLOPs, linear, accuracy: 0.005 + 1e-9, name)
            XCTAssertEqual(c.attentionMACs / 1e9, attn, accuracy: 0.005 + 1e-9, name)
            XCTAssertEqual(c.trueGFLOPs, truth, accuracy: 0.01, name)
        }
    }

    func testAt512AndPerImageTotals() {
        // 512²: T = 1024 (latent 64). Reference values to one decimal: within 0.05.
        XCTAssertEqual(ModelCost(Self.shape("XL", experts: 8, topK: 2, inputSize: 64)).trueGFLOPs, 2723.8, accuracy: 0.05)
        XCTAssertEqual(ModelCost(Self.shape("G", experts: 16, topK: 2, inputSize: 64)).trueGFLOPs, 5760.9, accuracy: 0.05)
        XCTAssertEqual(ModelCost(Self.shape("XL", inputSize: 64)).trueGFLOPs, 1049.1, accuracy: 0.05)
        // Per image with CFG (2 forwards per step): S/2-8E2A × 250 steps = 16.0 TFLOP; XL RF 50 steps = 65.6 TFLOP.
        XCTAssertEqual(ModelCost(Self.shape("S", experts: 8, topK: 2)).trueFLOPs * 2 * 250 / 1e12, 16.0, accuracy: 0.05)
        XCTAssertEqual(ModelCost(Self.shape("XL", experts: 8, topK: 2)).trueFLOPs * 2 * 50 / 1e12, 65.6, accuracy: 0.05)
    }
}
