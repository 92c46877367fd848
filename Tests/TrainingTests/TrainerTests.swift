import DiT
import Diffusion
import Foundation
import Metrics
import Tensor
@testable import Training
import XCTest

/// Closed forms, finite differences and behaviour of the trainer on tiny models.
final class TrainerTests: XCTestCase {
    static func tiny(flash: Bool = false, dense: Bool = false, shared: Int = 2, side: Int = 4, channels: Int = 2,
                     classes: Int = 3) -> DiTConfig {
        DiTConfig(name: "tiny", inputSize: side, patchSize: 2, inChannels: channels, hiddenSize: 16, depth: 2, numHeads: 2,
                  numClasses: classes, numExperts: 4, numExpertsPerTok: 2, useFlashAttn: flash, dense: dense,
                  numSharedExperts: shared)
    }

    /// Uniform(±scale) in every parameter (adaLN included, so every path carries signal); sin-cos `pos_embed`.
    static func randomize(_ p: ParameterSet, seed: UInt64, scale: Float = 0.3) {
        var rng = SplitMix64(seed: seed)
        for i in 0..<p.count { p.values[i] = scale * (2 * rng.nextUnitFloat() - 1) }
        let pos = positionEmbedding2D(dim: p.config.hiddenSize, grid: p.config.grid)
        pos.withUnsafeBufferPointer { p["pos_embed"].update(from: $0.baseAddress!, count: pos.count) }
    }

    struct Batch { var x: [Float]; var t: [Float]; var y: [Int32] }

    static func batch(_ c: DiTConfig, _ n: Int, seed: UInt64) -> Batch {
        var rng = Xoshiro256(seed: seed)
        let image = c.inChannels * c.inputSize * c.inputSize
        return Batch(x: (0..<(n * image)).map { _ in Float(rng.normal()) },
                     t: (0..<n).map { Float((($0 * 389) + 17) % 1000) },
                     y: (0..<n).map { Int32($0 % (c.numClasses + 1)) })
    }

    // MARK: The trainer's forward is the inference engine's

    func testForwardMatchesInferenceEngine() throws {
        for c in [Self.tiny(), Self.tiny(flash: true), Self.tiny(dense: true), Self.tiny(shared: 0)] {
            let model = TrainableDiT(config: c)
            Self.randomize(model.params, seed: 3)
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("trainable-\(getpid()).safetensors").path
            defer { try? FileManager.default.removeItem(atPath: path) }
            try model.params.write(to: path)
            let engine = try DiTModel(config: c, source: .safetensors(path: path))
            let b = Self.batch(c, 5, seed: 9)
            let out = model.forward(x: b.x, t: b.t, y: b.y, batch: 5)
            let n = 5 * c.outChannels * c.inputSize * c.inputSize
            var ref = [Float](repeating: 0, count: n)
            try engine.forward(x: b.x, t: b.t, y: b.y, batch: 5, out: &ref)
            let scale = ref.map { abs($0) }.max()!
            let err = (0..<n).map { abs(out[$0] - ref[$0]) }.max()!
            // Same Float32 operations in a different order (fused vs separate GEMMs): ≤ 1e-5 of the output scale.
            XCTAssertLessThanOrEqual(err / scale, 1e-5, "\(c.useFlashAttn ? "flash" : c.dense ? "dense" : "timm") shared \(c.numSharedExperts)")
        }
    }

    // MARK: Balance loss

    /// With a zero gate every token sees p = 1/E, ties go to the lowest ids, so experts 0 and 1 take every token:
    /// P_i = 1/E, f_0 = f_1 = E/K, f_other = 0 ⇒ L_bal = α·Σ_i f_i/E = α. The gate gradient from L_bal alone
    /// (dOut = 0) is, per expert row i, α/(N·E)·(f_i − 1)·Σ_t h_t (softmax backward at the uniform point).
    func testBalanceLossClosedForm() throws {
        let c = Self.tiny()
        let alpha: Float = 0.05
        let model = TrainableDiT(config: c, balanceAlpha: alpha)
        Self.randomize(model.params, seed: 5)
        for l in 0..<c.depth { model.params["blocks.\(l).moe.gate.weight"].update(repeating: 0, count: c.numExperts * c.hiddenSize) }
        let b = Self.batch(c, 3, seed: 1)
        let out = model.forward(x: b.x, t: b.t, y: b.y, batch: 3)
        _ = out
        for l in 0..<c.depth {
            XCTAssertEqual(model.balanceLoss[l], alpha, accuracy: 1e-6)
            XCTAssertEqual(model.expertCounts[l], [3 * c.tokens, 3 * c.tokens, 0, 0])
        }
        model.grads.zero()
        let dOut = [Float](repeating: 0, count: 3 * c.outChannels * c.inputSize * c.inputSize)
        model.backward(dOut: dOut)
        let n = 3 * c.tokens, d = c.hiddenSize, e = c.numExperts
        let f: [Float] = [2, 2, 0, 0]  // E·c_i/(N·K)
        for l in 0..<c.depth {
            let h = model.buffers!.blocks[l].h2.pointer
            var hSum = [Float](repeating: 0, count: d)
            for t in 0..<n { for j in 0..<d { hSum[j] += h[t * d + j] } }
            let g = model.grads["blocks.\(l).moe.gate.weight"]
            for i in 0..<e {
                for j in 0..<d {
                    let expected = alpha / Float(n * e) * (f[i] - 1) * hSum[j]
                    XCTAssertEqual(g[i * d + j], expected, accuracy: 1e-6 + 1e-4 * abs(expected), "layer \(l) expert \(i)")
                }
            }
        }
    }

    // MARK: Finite differences

    /// The whole training loss without the VB term (whose mean is frozen by construction, so it is not a function
    /// a finite difference can see) — mean ε-MSE plus the balance losses — against central differences, on 40
    /// random parameter entries of a tiny MoE. Step 1e-2 in Float32; |fd − grad| ≤ 2e-3 + 3e-2·|grad|.
    func testWholeLossMatchesFiniteDifferences() throws {
        let c = Self.tiny(flash: true)
        let model = TrainableDiT(config: c, balanceAlpha: 0.05)
        Self.randomize(model.params, seed: 11, scale: 0.25)
        let objective = DDPMObjective()
        let n = 3, image = c.inChannels * c.inputSize * c.inputSize, plane = c.inputSize * c.inputSize
        var rng = Xoshiro256(seed: 4)
        let x0 = (0..<(n * image)).map { _ in Float(rng.normal() * 0.5) }
        let noise = (0..<(n * image)).map { _ in Float(rng.normal()) }
        let t: [Int32] = [0, 300, 999], tf = t.map(Float.init), y: [Int32] = [0, 1, 3]
        var xt = [Float](repeating: 0, count: n * image)
        objective.noisy(x0: x0, noise: noise, t: t, batch: n, imageSize: image, into: &xt)

        func loss() -> Double {
            let out = model.forward(x: xt, t: tf, y: y, batch: n)
            let terms = objective.evaluate(out: out, x0: x0, xt: xt, noise: noise, t: t, batch: n, channels: c.inChannels,
                                           plane: plane, dOut: nil)
            return terms.meanMSE + model.balanceLoss.map(Double.init).reduce(0, +)
        }
        let out = model.forward(x: xt, t: tf, y: y, batch: n)
        var dOut = [Float](repeating: 0, count: n * 2 * image)
        _ = objective.evaluate(out: out, x0: x0, xt: xt, noise: noise, t: t, batch: n, channels: c.inChannels,
                               plane: plane, dOut: &dOut)
        for b in 0..<n { for i in image..<(2 * image) { dOut[b * 2 * image + i] = 0 } }  // drop the VB term's gradient
        model.grads.zero()
        model.backward(dOut: dOut)
        let routing = (0..<c.depth).map { Array(UnsafeBufferPointer(start: model.routing(layer: $0), count: n * c.tokens * 2)) }

        var pick = SplitMix64(seed: 8), checked = 0
        let trainable = model.params.specs.filter { !AdamW.isFixed($0.key) }
        while checked < 40 {
            let s = trainable[Int(pick.next() % UInt64(trainable.count))]
            let i = model.params.offsets[s.key]! + Int(pick.next() % UInt64(s.shape.reduce(1, *)))
            let saved = model.params.values[i], h: Float = 1e-2
            model.params.values[i] = saved + h; let up = loss()
            let sameRouting = (0..<c.depth).allSatisfy { Array(UnsafeBufferPointer(start: model.routing(layer: $0), count: n * c.tokens * 2)) == routing[$0] }
            model.params.values[i] = saved - h; let down = loss()
            model.params.values[i] = saved
            guard sameRouting else { continue }  // a top-k flip makes the loss non-differentiable there
            let fd = (up - down) / Double(2 * h), g = Double(model.grads.values[i])
            XCTAssertEqual(fd, g, accuracy: 2e-3 + 3e-2 * abs(g), "\(s.key)[\(i - model.params.offsets[s.key]!)]")
            checked += 1
        }
    }

    /// d(loss)/d(out) of the objective against central differences in Float64 arithmetic on the loss: on the v
    /// channels the whole loss (KL for t > 0, the discretised decoder NLL at t = 0), on the ε channels the MSE
    /// (the VB term sees ε̂ only through a frozen mean).
    func testObjectiveGradientMatchesFiniteDifferences() {
        let objective = DDPMObjective()
        let channels = 1, plane = 16, image = channels * plane, n = 4
        var rng = Xoshiro256(seed: 21)
        var x0 = (0..<(n * image)).map { _ in Float(max(-1, min(1, rng.normal() * 0.6))) }
        x0[0] = -1; x0[1] = 1  // the open edge bins of the decoder likelihood
        let noise = (0..<(n * image)).map { _ in Float(rng.normal()) }
        let t: [Int32] = [0, 1, 400, 999]
        var xt = [Float](repeating: 0, count: n * image)
        objective.noisy(x0: x0, noise: noise, t: t, batch: n, imageSize: image, into: &xt)
        var out = (0..<(n * 2 * image)).map { _ in Float(rng.normal() * 0.5) }
        var grad = [Float](repeating: 0, count: out.count)
        _ = objective.evaluate(out: out, x0: x0, xt: xt, noise: noise, t: t, batch: n, channels: channels, plane: plane, dOut: &grad)
        for b in 0..<n {
            for i in 0..<(2 * image) {
                let k = b * 2 * image + i, saved = out[k], h: Float = 1e-3
                func value() -> Double {
                    let terms = objective.evaluate(out: out, x0: x0, xt: xt, noise: noise, t: t, batch: n, channels: channels,
                                                   plane: plane, dOut: nil)
                    return i < image ? terms.meanMSE : terms.mean
                }
                out[k] = saved + h; let up = value()
                out[k] = saved - h; let down = value()
                out[k] = saved
                let fd = (up - down) / Double(Float(saved + h) - Float(saved - h))
                XCTAssertEqual(fd, Double(grad[k]), accuracy: 2e-5 + 2e-3 * abs(Double(grad[k])), "sample \(b) (t = \(t[b])) element \(i)")
            }
        }
    }

    // MARK: Training behaviour

    func testShortTrainingRunLowersHeldOutLoss() throws {
        let (train, heldOut) = try DigitsDataset.bundled().split()
        let c = DiTConfig(name: "tiny-digits", inputSize: 8, patchSize: 2, inChannels: 1, hiddenSize: 32, depth: 2, numHeads: 2,
                          numClasses: 10, numExperts: 4, numExpertsPerTok: 2)
        var o = TrainingOptions()
        o.steps = 60; o.batch = 32; o.lr = 3e-3; o.warmupSteps = 10; o.evalEvery = 60; o.checkpointEvery = 60; o.logEvery = 20
        o.evalDrawsPerImage = 1
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("train-\(getpid())-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let trainer = try Trainer(config: c, options: o, train: train, heldOut: heldOut, directory: dir)
        try trainer.run()
        let records = try String(contentsOfFile: trainer.files.log, encoding: .utf8).split(separator: "\n")
            .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let evals = records.filter { $0["kind"] as? String == "eval" }.map { $0["loss"] as! Double }
        XCTAssertEqual(evals.count, 2)
        // Untrained adaLN-Zero model: ε̂ = 0 ⇒ MSE ≈ 1. Sixty steps must at least halve the held-out loss.
        XCTAssertEqual(evals[0], 1, accuracy: 0.1)
        XCTAssertLessThan(evals[1], 0.5 * evals[0], "held-out loss \(evals)")
        let trains = records.filter { $0["kind"] as? String == "train" }
        XCTAssertEqual(trains.count, 3)
        XCTAssertEqual((trains[0]["expert_load"] as! [[Double]]).count, c.depth)
        // The checkpoint loads in the inference engine.
        _ = try DiTModel(config: c, source: .safetensors(path: trainer.files.ema))
    }

    /// Stopping after 10 steps and resuming gives bit-identical weights to 20 uninterrupted steps (per-step RNG
    /// streams, optimiser state saved, one worker so the arithmetic order is fixed).
    func testResumeIsExact() throws {
        let (train, heldOut) = try DigitsDataset.bundled().split()
        let c = DiTConfig(name: "tiny-digits", inputSize: 8, patchSize: 2, inChannels: 1, hiddenSize: 16, depth: 1, numHeads: 2,
                          numClasses: 10, numExperts: 4, numExpertsPerTok: 2)
        var o = TrainingOptions()
        o.steps = 20; o.batch = 8; o.warmupSteps = 5; o.evalEvery = 1000; o.checkpointEvery = 1000; o.logEvery = 5
        o.evalDrawsPerImage = 1
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("resume-\(getpid())-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: base) }
        let straight = try Trainer(config: c, options: o, train: train, heldOut: heldOut, directory: base.appendingPathComponent("a").path)
        try straight.run()
        let dir = base.appendingPathComponent("b").path
        var stopAt = 0
        let first = try Trainer(config: c, options: o, train: train, heldOut: heldOut, directory: dir)
        try first.run(shouldStop: { stopAt += 1; return stopAt > 10 })
        XCTAssertEqual(first.step, 10)
        let second = try Trainer(config: c, options: o, train: train, heldOut: heldOut, directory: dir)
        XCTAssertTrue(second.resumed)
        try second.run()
        XCTAssertEqual(second.step, 20)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: second.model.params.values, count: second.model.params.count)),
                       Array(UnsafeBufferPointer(start: straight.model.params.values, count: straight.model.params.count)))
        XCTAssertEqual(Array(UnsafeBufferPointer(start: second.ema.values, count: second.ema.count)),
                       Array(UnsafeBufferPointer(start: straight.ema.values, count: straight.ema.count)))
        // A different seed in the same directory is refused, naming the field.
        var other = o; other.seed = 1
        XCTAssertThrowsError(try Trainer(config: c, options: other, train: train, heldOut: heldOut, directory: dir)) {
            XCTAssertTrue("\($0)".contains("seed"), "\($0)")
        }
    }

    func testTrainerRefusesDataOfTheWrongShape() throws {
        let (train, heldOut) = try DigitsDataset.bundled().split()
        XCTAssertThrowsError(try Trainer(config: Self.tiny(), options: TrainingOptions(), train: train, heldOut: heldOut,
                                         directory: FileManager.default.temporaryDirectory.path + "/never")) {
            XCTAssertTrue("\($0)".contains("input_size 8"), "\($0)")
        }
    }

    // MARK: Data

    func testDigitsSplitIsFixedStratifiedAndDisjoint() throws {
        let all = try DigitsDataset.bundled()
        XCTAssertEqual(all.count, 1797)
        XCTAssertEqual(all.pixels.min(), -1); XCTAssertEqual(all.pixels.max(), 1)
        let (train, held) = all.split()
        XCTAssertEqual(train.count, 1497); XCTAssertEqual(held.count, 300)
        var perClass = [Int](repeating: 0, count: 10), heldPerClass = [Int](repeating: 0, count: 10)
        for l in all.labels { perClass[Int(l)] += 1 }
        for l in held.labels { heldPerClass[Int(l)] += 1 }
        for k in 0..<10 { XCTAssertEqual(Double(heldPerClass[k]), 300 * Double(perClass[k]) / 1797, accuracy: 1) }
        let again = all.split()
        XCTAssertEqual(again.heldOut.labels, held.labels); XCTAssertEqual(again.heldOut.pixels, held.pixels)
        // Disjoint: every image appears on one side only, as often as in the whole set.
        func key(_ d: DigitsDataset, _ i: Int) -> [Float] { Array(d.pixels[(i * 64)..<((i + 1) * 64)]) + [Float(d.labels[i])] }
        var counts: [[Float]: Int] = [:]
        for i in 0..<all.count { counts[key(all, i), default: 0] += 1 }
        for i in 0..<train.count { counts[key(train, i), default: 0] -= 1 }
        for i in 0..<held.count { counts[key(held, i), default: 0] -= 1 }
        XCTAssertTrue(counts.values.allSatisfy { $0 == 0 })
    }

    func testDigitsLoaderNamesTheBadLineAndField() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("digits-\(getpid()).csv").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let good = Array(repeating: "0", count: 64).joined(separator: ",") + ",3"
        try (good + "\n" + good.replacingOccurrences(of: ",3", with: ",12") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try DigitsDataset.load(csv: path)) { XCTAssertTrue("\($0)".contains("line 2, label"), "\($0)") }
        try (good + "\r\n" + "1,2,3\r\n").write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try DigitsDataset.load(csv: path)) { XCTAssertTrue("\($0)".contains("line 2") && "\($0)".contains("found 3"), "\($0)") }
        try (good + "\r\n" + good + "\r\n").write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(try DigitsDataset.load(csv: path).count, 2)
    }

    /// The digits twins: activated parameters (ModelCost's formula: attention, adaLN, K routed + shared experts or
    /// the dense MLP, gate, and everything outside the blocks) within 10% of each other.
    func testDigitsTwinsHaveMatchingActivatedParameters() throws {
        func activated(_ c: DiTConfig) -> Int {
            ModelCost(ModelShape(depth: c.depth, hidden: c.hiddenSize, heads: c.numHeads, patchSize: c.patchSize,
                                 inputSize: c.inputSize, inChannels: c.inChannels, numClasses: c.numClasses,
                                 experts: c.dense ? 0 : c.numExperts, topK: c.dense ? 0 : c.numExpertsPerTok,
                                 sharedExperts: c.numSharedExperts, mlpRatio: Int(c.mlpRatio))).activatedParameters
        }
        let a = activated(try DiTConfig.resolve("digits-moe")), b = activated(try DiTConfig.resolve("digits-dense"))
        XCTAssertEqual(a, 2_718_216); XCTAssertEqual(b, 2_833_928)
        XCTAssertLessThan(abs(Double(b) / Double(a) - 1), 0.1)
    }
}
