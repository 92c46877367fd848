import XCTest
@testable import Metrics

/// Hand-computed examples. Tolerance 1e-12 (relative to values of order 1) unless stated.
final class LoadBalanceTests: XCTestCase {
    let tol = 1e-12

    func testLoadStatsOnHandComputedLoads() {
        // loads 1,2,3,6: S = 12, mean 3, max 6, min 1; population var = (4+1+0+9)/4 = 3.5.
        // H = Σ p ln(1/p), p = 1/12, 1/6, 1/4, 1/2 → 1.1988493129136213 nats (python math.log).
        let s = LoadStats(loads: [1, 2, 3, 6])
        XCTAssertEqual(s.units, 4)
        XCTAssertEqual(s.total, 12)
        XCTAssertEqual(s.mean, 3)
        XCTAssertEqual(s.max, 6)
        XCTAssertEqual(s.min, 1)
        XCTAssertEqual(s.balancedness, 0.5, accuracy: tol)
        XCTAssertEqual(s.maxVio, 1.0, accuracy: tol)
        XCTAssertEqual(s.minOverMean, 1.0 / 3.0, accuracy: tol)
        XCTAssertEqual(s.cv, 3.5.squareRoot() / 3, accuracy: tol)
        XCTAssertEqual(s.entropyNats, 1.1988493129136213, accuracy: tol)
        XCTAssertEqual(s.entropyBits, 1.7295739585136227, accuracy: tol)
        XCTAssertEqual(s.normalizedEntropy, 0.8647869792568114, accuracy: tol)
        XCTAssertEqual(s.effectiveFraction, 0.8290746760692317, accuracy: tol)
        XCTAssertEqual(s.deadFraction, 0)
    }

    func testUniformAndOneHotExtremes() {
        let u = LoadStats(loads: [5, 5, 5, 5])
        XCTAssertEqual(u.balancedness, 1, accuracy: tol)
        XCTAssertEqual(u.maxVio, 0, accuracy: tol)
        XCTAssertEqual(u.cv, 0, accuracy: tol)
        XCTAssertEqual(u.entropyBits, 2, accuracy: tol)
        XCTAssertEqual(u.normalizedEntropy, 1, accuracy: tol)
        XCTAssertEqual(u.effectiveFraction, 1, accuracy: tol)

        let h = LoadStats(loads: [0, 0, 8, 0])
        XCTAssertEqual(h.balancedness, 0.25, accuracy: tol)
        XCTAssertEqual(h.maxVio, 3, accuracy: tol)
        XCTAssertEqual(h.cv, 3.0.squareRoot(), accuracy: tol)   // std of (−2,−2,6,−2) = √12, mean 2
        XCTAssertEqual(h.entropyNats, 0, accuracy: tol)
        XCTAssertEqual(h.effectiveFraction, 0.25, accuracy: tol)
        XCTAssertEqual(h.deadFraction, 0.75, accuracy: tol)

        let z = LoadStats(loads: [0, 0])
        XCTAssertEqual(z.balancedness, 1)
        XCTAssertEqual(z.maxVio, 0)
        XCTAssertEqual(z.deadFraction, 1)
    }

    func testRecorderMarginalsJointAndRejections() {
        let dims = RoutingDimensions(layers: 2, steps: 3, positions: 4, classes: 5, experts: 4)
        let r = ExpertLoadRecorder(dims: dims)
        XCTAssertTrue(r.storesJoint)
        func rec(_ l: Int, _ s: Int, _ c: Int, _ p: Int, _ e: [Int32]) {
            e.withUnsafeBufferPointer { r.record(layer: l, step: s, classLabel: c, tokenPosition: p, experts: $0) }
        }
        rec(0, 0, 1, 2, [3, 1])
        rec(0, 2, 1, 2, [3, 0])
        rec(0, 2, 4, 0, [3, 3])     // the same expert in both slots counts twice
        rec(1, 1, 0, 3, [2, 9])     // slot 9 out of range: rejected slot, expert 2 counted
        rec(2, 0, 0, 0, [0, 1])     // layer out of range: rejected token
        rec(0, 0, 5, 0, [0, 1])     // class out of range: rejected token
        XCTAssertEqual(r.recordedTokens, 4)
        XCTAssertEqual(r.rejectedTokens, 2)
        XCTAssertEqual(r.rejectedSlots, 1)

        XCTAssertEqual(r.expertLoads(layer: 0), [1, 1, 0, 4])
        XCTAssertEqual(r.expertLoads(layer: 1), [0, 0, 1, 0])
        let step = r.stepExpertTable(layer: 0)
        XCTAssertEqual(step.rowLabels, [0, 1, 2])
        XCTAssertEqual(step.values, [0, 1, 0, 1,  0, 0, 0, 0,  1, 0, 0, 3])
        let pos = r.positionExpertTable(layer: 0)
        XCTAssertEqual(pos.values, [0, 0, 0, 2,  0, 0, 0, 0,  1, 1, 0, 2,  0, 0, 0, 0])
        let cls = r.classExpertTable(layer: 0)
        XCTAssertEqual(cls.rowLabels, [1, 4])           // classes with any count
        XCTAssertEqual(cls.values, [1, 1, 0, 2,  0, 0, 0, 2])
        let chosen = r.classExpertTable(layer: 0, classes: [4, 0])
        XCTAssertEqual(chosen.values, [0, 0, 0, 2,  0, 0, 0, 0])
        XCTAssertEqual(r.jointCount(layer: 0, step: 2, position: 0, classLabel: 4, expert: 3), 2)
        XCTAssertEqual(r.jointCount(layer: 0, step: 2, position: 2, classLabel: 1, expert: 0), 1)
        XCTAssertEqual(r.jointCount(layer: 0, step: 1, position: 2, classLabel: 1, expert: 0), 0)
        XCTAssertNil(r.jointCount(layer: 5, step: 0, position: 0, classLabel: 0, expert: 0))

        // merge doubles; reset clears
        let r2 = ExpertLoadRecorder(dims: dims)
        r2.merge(r)
        r2.merge(r)
        XCTAssertEqual(r2.expertLoads(layer: 0), [2, 2, 0, 8])
        XCTAssertEqual(r2.jointCount(layer: 0, step: 2, position: 0, classLabel: 4, expert: 3), 4)
        XCTAssertEqual(r2.recordedTokens, 8)
        r2.reset()
        XCTAssertEqual(r2.expertLoads(layer: 0), [0, 0, 0, 0])
        XCTAssertEqual(r2.recordedTokens, 0)
    }

    func testJointIsDroppedAboveTheLimitButMarginalsRemain() {
        let dims = RoutingDimensions(layers: 1, steps: 2, positions: 2, classes: 2, experts: 2)
        let r = ExpertLoadRecorder(dims: dims, jointLimit: 15)   // joint would need 16
        XCTAssertFalse(r.storesJoint)
        [Int32(1), 1].withUnsafeBufferPointer { r.record(layer: 0, step: 1, classLabel: 0, tokenPosition: 1, experts: $0) }
        XCTAssertEqual(r.expertLoads(layer: 0), [0, 2])
        XCTAssertNil(r.jointCount(layer: 0, step: 1, position: 1, classLabel: 0, expert: 1))
    }

    func testRecordImageUsesRowIndexAsPosition() {
        let r = ExpertLoadRecorder(dims: RoutingDimensions(layers: 1, steps: 1, positions: 3, classes: 1, experts: 3))
        let topK: [Int32] = [0, 1,  1, 2,  2, 0]   // 3 tokens × k = 2
        topK.withUnsafeBufferPointer { r.recordImage(layer: 0, step: 0, classLabel: 0, topK: $0, k: 2) }
        XCTAssertEqual(r.positionExpertTable(layer: 0).values, [1, 1, 0,  0, 1, 1,  1, 0, 1])
    }

    func testMinMaxScaling() {
        let t = CountTable(layer: 0, rowName: "step", rowLabels: [0, 1], columns: 2, values: [1, 3, 5, 9])
        XCTAssertEqual(t.minMaxScaled().values, [0, 0.25, 0.5, 1])
        XCTAssertEqual(t.minMaxScaled().scale, "minmax")
        let c = CountTable(layer: 0, rowName: "step", rowLabels: [0], columns: 2, values: [4, 4])
        XCTAssertEqual(c.minMaxScaled().values, [0, 0])
        XCTAssertEqual(t.csv(), "step,expert0,expert1\n0,1,3\n1,5,9\n")
    }

    // MARK: placement

    func placement() throws -> ExpertPlacement {
        try ExpertPlacement(experts: 4, workers: [
            .init(name: "w0", numaNode: 0, expertRanges: [0...1]),
            .init(name: "w1", numaNode: 0, experts: [1, 2]),
            .init(name: "w2", numaNode: 1, experts: [3]),
        ])
    }

    func testWorkerAndNumaLoadsSplitReplicasEvenly() throws {
        let p = try placement()
        XCTAssertEqual(p.replicaCounts, [1, 2, 1, 1])
        XCTAssertEqual(p.workerLoads(expertLoads: [4, 0, 2, 2]), [4, 2, 2])
        XCTAssertEqual(p.workerLoads(expertLoads: [1, 1, 1, 1]), [1.5, 1.5, 1])
        XCTAssertEqual(p.numaNodeIDs, [0, 1])
        XCTAssertEqual(p.numaLoads(expertLoads: [4, 0, 2, 2]), [6, 2])
    }

    func testReportPerLayerAndOverall() throws {
        let rep = LoadBalanceReport(loads: [[4, 0, 2, 2], [1, 1, 1, 1]], placement: try placement())
        XCTAssertEqual(rep.layers.count, 2)
        XCTAssertEqual(rep.layers[0].experts.maxVio, 1, accuracy: tol)
        XCTAssertEqual(rep.layers[1].experts.maxVio, 0, accuracy: tol)
        XCTAssertEqual(rep.layers[0].workerLoads!, [4, 2, 2])
        XCTAssertEqual(rep.layers[1].numaLoads!, [3, 1])
        XCTAssertEqual(rep.summed.expertLoads, [5, 1, 3, 3])
        // Σ mean / Σ max: experts (2+1)/(4+1); workers (8/3+4/3)/(4+1.5); NUMA (4+2)/(6+3).
        XCTAssertEqual(rep.overall.expertBalancedness, 0.6, accuracy: tol)
        XCTAssertEqual(rep.overall.workerBalancedness!, 4 / 5.5, accuracy: tol)
        XCTAssertEqual(rep.overall.numaBalancedness!, 6.0 / 9.0, accuracy: tol)
        XCTAssertEqual(rep.overall.meanMaxVio, 0.5, accuracy: tol)
        XCTAssertEqual(rep.overall.worstMaxVio, 1, accuracy: tol)
        XCTAssertEqual(rep.overall.worstLayer, 0)
    }

    func testPlacementValidationErrors() {
        XCTAssertThrowsError(try ExpertPlacement(experts: 2, workers: [])) {
            XCTAssertEqual($0 as? PlacementError, .noWorkers)
        }
        XCTAssertThrowsError(try ExpertPlacement(experts: 2, workers: [.init(name: "a", numaNode: 0, experts: [0, 2])])) {
            XCTAssertEqual($0 as? PlacementError, .expertOutOfRange(worker: "a", expert: 2, experts: 2))
        }
        XCTAssertThrowsError(try ExpertPlacement(experts: 2, workers: [.init(name: "a", numaNode: 0, experts: [0, 1, 1])])) {
            XCTAssertEqual($0 as? PlacementError, .duplicateExpert(worker: "a", expert: 1))
        }
        XCTAssertThrowsError(try ExpertPlacement(experts: 3, workers: [.init(name: "a", numaNode: 0, experts: [1])])) {
            XCTAssertEqual($0 as? PlacementError, .unhostedExperts([0, 2]))
            XCTAssertTrue("\($0)".contains("0, 2"))
        }
        let c = ExpertPlacement.contiguous(experts: 5, workers: 2, numaNodes: 2)
        XCTAssertEqual(c.workers.map(\.experts), [[0, 1, 2], [3, 4]])
        XCTAssertEqual(c.workers.map(\.numaNode), [0, 1])
    }

    func testWhatIfReplicatesTheHotExpertWhenSlotsAllow() throws {
        // E = 4, W = 2, loads 10,1,1,0. Current w0 {0,1} = 11, w1 {2,3} = 1.
        // Ideal per-worker 6 < 10, so expert 0 gets a second replica (shards 5, 5; then 5 ≤ 6 stops).
        // LPT: 5→w0, 5→w1, e1 (1)→w0 (tie, lower index), e2 (1)→w1, e3 (0)→w0. Max 6 = lower bound.
        let current = try ExpertPlacement(experts: 4, workers: [
            .init(name: "w0", numaNode: 0, experts: [0, 1]), .init(name: "w1", numaNode: 0, experts: [2, 3])])
        let w = PlacementPlanner.whatIf(loads: [[10, 1, 1, 0]], current: current, extraSlotsPerWorker: 1)
        XCTAssertEqual(w.current.workerLoads, [11, 1])
        XCTAssertEqual(w.current.maxWorkerLoad, 11)
        XCTAssertEqual(w.replicas, [2, 1, 1, 1])
        XCTAssertEqual(w.rebalancedPlacement.workers.map(\.experts), [[0, 1, 3], [0, 2]])
        XCTAssertEqual(w.rebalanced.workerLoads, [6, 6])
        XCTAssertEqual(w.rebalanced.maxWorkerLoad, 6)
        XCTAssertEqual(w.lowerBound, 6)
        XCTAssertEqual(w.improvement, 11.0 / 6.0, accuracy: tol)
    }

    func testWhatIfWithoutSpareSlotsOnlyMoves() throws {
        // No free slot: no replicas. LPT with 2 slots per worker: 10→w0, 1→w1, 1→w1, 0→w0 (w1 full).
        let current = try ExpertPlacement(experts: 4, workers: [
            .init(name: "w0", numaNode: 0, experts: [0, 1]), .init(name: "w1", numaNode: 0, experts: [2, 3])])
        let w = PlacementPlanner.whatIf(loads: [[10, 1, 1, 0]], current: current, extraSlotsPerWorker: 0)
        XCTAssertEqual(w.replicas, [1, 1, 1, 1])
        XCTAssertEqual(w.rebalancedPlacement.workers.map(\.experts), [[0, 3], [1, 2]])
        XCTAssertEqual(w.rebalanced.maxWorkerLoad, 10)
        XCTAssertEqual(w.lowerBound, 10)
        XCTAssertEqual(w.improvement, 1.1, accuracy: tol)
    }

    func testCriticalPathSumsEachLayersSlowestWorker() throws {
        // Summed loads are balanced (2, 2) but each layer loads only one worker: Σ_l max_w = 2 + 2.
        let p = try ExpertPlacement(experts: 2, workers: [
            .init(name: "a", numaNode: 0, experts: [0]), .init(name: "b", numaNode: 0, experts: [1])])
        let cost = PlacementCost(placement: p, loads: [[2, 0], [0, 2]])
        XCTAssertEqual(cost.maxWorkerLoad, 2)
        XCTAssertEqual(cost.criticalPathLoad, 4)
        XCTAssertEqual(cost.balancedness, 1)
    }
}
