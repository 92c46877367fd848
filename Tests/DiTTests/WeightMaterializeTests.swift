import DiT
import Foundation
import Tensor
import XCTest

/// `DiTWeights(…, materialize:)` copies the scoped routed experts into the allocator's memory.
final class WeightMaterializeTests: XCTestCase {
    let config = DiTConfig(name: "tiny-moe", inputSize: 8, patchSize: 2, inChannels: 4, hiddenSize: 64, depth: 3,
                           numHeads: 4, numClasses: 10, numExperts: 8, numExpertsPerTok: 2)

    final class CountingAllocator: @unchecked Sendable {
        var live: [UnsafeMutableRawPointer: Int] = [:]
        var allocations = 0
        var allocator: WeightAllocator {
            WeightAllocator(allocate: { n in
                let p = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 4096)
                self.live[p] = n; self.allocations += 1
                return p
            }, deallocate: { p, n in
                XCTAssertEqual(self.live.removeValue(forKey: p), n, "freed with the size it was allocated with")
                p.deallocate()
            })
        }
        func owns(_ p: UnsafeRawPointer, bytes: Int) -> Bool {
            live.contains { base, n in p >= UnsafeRawPointer(base) && p + bytes <= UnsafeRawPointer(base) + n }
        }
    }

    func testScopedExpertsAreCopiedIntoTheAllocatorsMemoryWithIdenticalBytes() throws {
        let experts: Set<Int> = [0, 3, 6]
        let counting = CountingAllocator()
        var placed: DiTWeights? = try DiTWeights(config: config, source: .random(seed: 5), scope: .experts(experts),
                                                 materialize: counting.allocator)
        let plain = try DiTWeights(config: config, source: .random(seed: 5), scope: .experts(experts))
        XCTAssertTrue(placed!.isMaterialized)
        XCTAssertFalse(plain.isMaterialized)
        XCTAssertEqual(counting.allocations, config.depth * experts.count, "one allocation per expert and layer")
        for l in 0..<config.depth {
            for e in experts {
                let got = placed!.expert(layer: l, expert: e), want = plain.expert(layer: l, expert: e)
                for (g, w) in [(got.gateUp, want.gateUp), (got.down, want.down)] {
                    let bytes = g.count * g.dtype.byteSize
                    XCTAssertEqual(g.rows, w.rows); XCTAssertEqual(g.cols, w.cols); XCTAssertEqual(g.dtype, w.dtype)
                    XCTAssertTrue(counting.owns(g.base, bytes: bytes), "layer \(l) expert \(e) is outside the allocator's memory")
                    XCTAssertEqual(Int(bitPattern: g.base) % 64, 0, "64-byte aligned")
                    XCTAssertEqual(memcmp(g.base, w.base, bytes), 0, "layer \(l) expert \(e): bytes differ")
                }
                // gate_proj and up_proj are the halves of the copied fused matrix.
                let x = "blocks.\(l).moe.experts.\(e)."
                XCTAssertEqual(placed!.matrix(x + "gate_proj.weight").base, got.gateUp.base)
                XCTAssertEqual(placed!.matrix(x + "up_proj.weight").base,
                               got.gateUp.base + (got.gateUp.count / 2) * got.gateUp.dtype.byteSize)
                XCTAssertEqual(placed!.vector(x + "down_proj.weight"), got.down.base.assumingMemoryBound(to: Float.self))
            }
        }
        // The copies compute what the originals compute: one expert, bit-identical (same GEMMs on the same bytes).
        let e = plain.expert(layer: 1, expert: 3), f = placed!.expert(layer: 1, expert: 3)
        let a = SwiGLUExpert(gateUp: e.gateUp, down: e.down), b = SwiGLUExpert(gateUp: f.gateUp, down: f.down)
        let rows = 5, d = config.hiddenSize
        let x = (0..<(rows * d)).map { Float(($0 * 37) % 23) / 23 - 0.5 }
        var outA = [Float](repeating: 0, count: rows * d), outB = outA
        let hidden = UnsafeMutablePointer<Float>.allocate(capacity: SwiGLUExpert.hiddenScratchCount(rows: rows, width: a.width))
        defer { hidden.deallocate() }
        a.apply(x, rows: rows, into: &outA, accumulate: false, hidden: hidden, widen: nil)
        b.apply(x, rows: rows, into: &outB, accumulate: false, hidden: hidden, widen: nil)
        XCTAssertEqual(outA, outB)
        placed = nil
        XCTAssertTrue(counting.live.isEmpty, "deinit returns every copy to the allocator")
    }

    func testAnAllocatorThatFailsIsAClearError() {
        let failing = WeightAllocator(allocate: { _ in nil }, deallocate: { _, _ in XCTFail("nothing to free") })
        XCTAssertThrowsError(try DiTWeights(config: config, source: .random(seed: 5), scope: .experts([2]),
                                            materialize: failing)) { e in
            XCTAssertTrue("\(e)".contains("cannot allocate") && "\(e)".contains("routed expert 2 of layer 0")
                          && "\(e)".contains("seed 5"), "\(e)")
        }
    }
}
