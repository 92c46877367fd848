import DiT
import Foundation
import Tensor
@testable import Training
import XCTest

/// The trainer's forward, loss and every parameter gradient against an independent PyTorch autograd reference
/// (tools/make_train_fixtures.py: a plain-torch DiT-MoE / dense DiT in Float64 with upstream's diffusion loss and
/// balance loss, itself checked against upstream models.py). Tolerances, per tensor: max |Δ| ≤ 1e-4 · max |ref|
/// for outputs and gradients (Float32 against Float64), loss terms within 1e-5 relative, routing identical.
final class GradientFixtureTests: XCTestCase {
    static let fixtures = Bundle.module.resourceURL!.appendingPathComponent("Fixtures")

    struct Case {
        let config: DiTConfig
        let alpha: Float
        let file: SafetensorsFile
    }

    static func load(_ name: String) throws -> Case {
        let file = try SafetensorsFile(path: fixtures.appendingPathComponent(name + ".safetensors").path)
        let meta = file.metadata
        let json = FileManager.default.temporaryDirectory.appendingPathComponent("fixture-\(name)-\(getpid()).json")
        try Data(meta["config"]!.utf8).write(to: json)
        defer { try? FileManager.default.removeItem(at: json) }
        let config = try DiTConfig.load(jsonFile: json.path)
        return Case(config: config, alpha: Float(meta["alpha"] ?? "0") ?? 0, file: file)
    }

    func relativeError(_ a: [Float], _ ref: [Float]) -> Float {
        let scale = ref.map { abs($0) }.max() ?? 0
        let err = zip(a, ref).map { abs($0 - $1) }.max() ?? 0
        return scale > 0 ? err / scale : err
    }

    func runCase(_ name: String, threads: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let fx = try Self.load(name)
        let c = fx.config, f = fx.file
        Parallel.threads = threads
        defer { Parallel.threads = 1 }
        let model = TrainableDiT(config: c, balanceAlpha: fx.alpha)
        for s in model.params.specs {
            let v = try f.floats("param." + s.key)
            XCTAssertEqual(v.count, s.shape.reduce(1, *), "\(name): \(s.key)", file: file, line: line)
            v.withUnsafeBufferPointer { model.params[s.key].update(from: $0.baseAddress!, count: v.count) }
        }
        let x0 = try f.floats("x0"), noise = try f.floats("noise")
        let t = try f.integers("t").map(Int32.init), y = try f.integers("y").map(Int32.init)
        let batch = t.count, image = c.inChannels * c.inputSize * c.inputSize
        let objective = DDPMObjective()
        var xt = [Float](repeating: 0, count: batch * image)
        objective.noisy(x0: x0, noise: noise, t: t, batch: batch, imageSize: image, into: &xt)
        let tf = t.map(Float.init)
        let out = model.forward(x: xt, t: tf, y: y, batch: batch)
        let outArray = Array(UnsafeBufferPointer(start: out, count: batch * 2 * image))
        let outErr = relativeError(outArray, try f.floats("out"))
        XCTAssertLessThanOrEqual(outErr, 1e-4, "\(name): output max |Δ|/max|ref| = \(outErr)", file: file, line: line)

        if c.isMoE {
            for l in 0..<c.depth {
                let ids = try f.integers("routing.\(l).experts").map(Int32.init)
                let mine = Array(UnsafeBufferPointer(start: model.routing(layer: l), count: ids.count))
                XCTAssertEqual(mine, ids, "\(name): routing of layer \(l)", file: file, line: line)
            }
            let balance = try f.floats("loss.balance")
            for l in 0..<c.depth {
                XCTAssertEqual(model.balanceLoss[l], balance[l], accuracy: 1e-5 * max(abs(balance[l]), 1e-3),
                               "\(name): balance loss of layer \(l)", file: file, line: line)
            }
        }

        var dOut = [Float](repeating: 0, count: batch * 2 * image)
        let terms = objective.evaluate(out: out, x0: x0, xt: xt, noise: noise, t: t, batch: batch,
                                       channels: c.inChannels, plane: c.inputSize * c.inputSize, dOut: &dOut)
        let mse = try f.floats("loss.mse"), vb = try f.floats("loss.vb")
        for b in 0..<batch {
            XCTAssertEqual(terms.mse[b], Double(mse[b]), accuracy: 1e-5 * Double(abs(mse[b])) + 1e-7, "\(name): mse[\(b)] (t = \(t[b]))", file: file, line: line)
            XCTAssertEqual(terms.vb[b], Double(vb[b]), accuracy: 1e-4 * Double(abs(vb[b])) + 1e-6, "\(name): vb[\(b)] (t = \(t[b]))", file: file, line: line)
        }
        let total = terms.mean + model.balanceLoss.map(Double.init).reduce(0, +)
        let refTotal = Double(try f.floats("loss.total")[0])
        XCTAssertEqual(total, refTotal, accuracy: 1e-5 * abs(refTotal), "\(name): total loss", file: file, line: line)

        model.grads.zero()
        model.backward(dOut: dOut)
        var checked = 0
        for s in model.params.specs where !AdamW.isFixed(s.key) {
            let ref = try f.floats("grad." + s.key)
            let mine = Array(UnsafeBufferPointer(start: model.grads[s.key], count: ref.count))
            let err = relativeError(mine, ref)
            XCTAssertLessThanOrEqual(err, 1e-4, "\(name): d/d \(s.key) max |Δ|/max|ref| = \(err)", file: file, line: line)
            checked += 1
        }
        XCTAssertEqual(checked, model.params.specs.count - 1, file: file, line: line)
    }

    func testMoETimmLayout() throws { try runCase("moe_timm", threads: 1) }
    func testMoEFlashLayoutWithQKNorm() throws { try runCase("moe_flash", threads: 1) }
    func testMoEWithoutSharedExpert() throws { try runCase("moe_noshared", threads: 1) }
    func testDenseDiT() throws { try runCase("dense", threads: 1) }
    func testMoEPatch1EightExperts() throws { try runCase("moe_p1", threads: 1) }
    /// Two workers: expert groups, row splits of every GEMM and the per-worker q/k-norm partial sums all run.
    func testMoEFlashLayoutTwoWorkers() throws { try runCase("moe_flash", threads: 2) }
    func testDenseTwoWorkers() throws { try runCase("dense", threads: 2) }
}
