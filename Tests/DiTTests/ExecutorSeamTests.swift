import XCTest
@testable import DiT
import Tensor

/// The expert-executor seam: grouping invariants, and a model built on an expert subset agrees with the full one.
final class ExecutorSeamTests: XCTestCase {
    /// Wraps the in-process executor and checks the ExpertShards invariants on every call.
    final class CheckingExecutor: ExpertExecutor {
        let inner: InProcessExpertExecutor
        var calls = 0
        var violations: [String] = []
        init(_ inner: InProcessExpertExecutor) { self.inner = inner }
        func execute(_ s: ExpertShards) throws {
            calls += 1
            if s.offsets[0] != 0 { violations.append("offsets[0] != 0") }
            for e in 0..<s.expertCount where s.offsets[e + 1] < s.offsets[e] { violations.append("offsets not ascending") }
            for r in 0..<s.offsets[s.expertCount] where !(s.gateWeights[r] > 0 && s.gateWeights[r] < 1) {
                violations.append("gate weight \(s.gateWeights[r]) out of (0, 1)")
            }
            try inner.execute(s)
        }
    }

    func testShardsAreGroupedAndSubsetWeightsMatchTheFullModel() throws {
        let config = try DiTConfig.named("DiT-MoE-S/2-8E2A")
        var tiny = config
        tiny.depth = 2; tiny.inputSize = 8
        let full = try DiTWeights(config: tiny, source: .random(seed: 5))
        let checking = CheckingExecutor(InProcessExpertExecutor(weights: full))
        let model = try DiTModel(weights: full, executor: checking)
        let recorder = RoutingRecorder()
        model.observer = recorder
        let n = 2 * tiny.inChannels * 64
        let x = (0..<n).map { Float(($0 * 7919) % 101) / 50 - 1 }
        var out = [Float](repeating: 0, count: 2 * tiny.outChannels * 64)
        try model.forward(x: x, t: [10, 500], y: [3, 1000], batch: 2, out: &out)
        XCTAssertEqual(checking.calls, 2)
        XCTAssertEqual(checking.violations, [])
        // Slots sorted by weight, top-2 weights sum below 1 (no renormalisation).
        let w = recorder.weights[0]!
        for i in stride(from: 0, to: w.count, by: 2) { XCTAssertGreaterThanOrEqual(w[i], w[i + 1]); XCTAssertLessThan(w[i] + w[i + 1], 1) }

        // A worker holding experts {1, 5} materialises identical random weights for them.
        let subset = try DiTWeights(config: tiny, source: .random(seed: 5), scope: .experts([1, 5]))
        XCTAssertEqual(subset.fingerprint, full.fingerprint)
        for layer in 0..<2 {
            for e in [1, 5] {
                let a = full.expert(layer: layer, expert: e), b = subset.expert(layer: layer, expert: e)
                XCTAssertEqual(Array(UnsafeBufferPointer(start: a.gateUp.float32(scratch: nil), count: a.gateUp.count)),
                               Array(UnsafeBufferPointer(start: b.gateUp.float32(scratch: nil), count: b.gateUp.count)))
            }
        }
        XCTAssertThrowsError(try DiTModel(weights: subset))
    }
}
