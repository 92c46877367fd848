import DiT
import Foundation
import Tensor
@testable import Training
import XCTest

/// The MLP classifier's forward, cross-entropy and every parameter gradient against PyTorch autograd
/// (tools/make_classifier_fixtures.py: the same network in float64 from float32-rounded parameters and inputs), and
/// against central finite differences of the loss. Tolerances: max |Δ| ≤ 1e-4·max |ref| per tensor (Float32 against
/// Float64); loss within 1e-5 relative.
final class MLPClassifierTests: XCTestCase {
    static let fixtures = Bundle.module.resourceURL!.appendingPathComponent("Fixtures")

    func relativeError(_ a: [Float], _ ref: [Float]) -> Float {
        XCTAssertEqual(a.count, ref.count)
        let scale = ref.map { abs($0) }.max() ?? 0
        let err = zip(a, ref).map { abs($0 - $1) }.max() ?? 0
        return scale > 0 ? err / scale : err
    }

    func fixtureCase(_ name: String) throws {
        let path = Self.fixtures.appendingPathComponent(name + ".safetensors").path
        let f = try SafetensorsFile(path: path)
        let widths = f.metadata["widths"]!.split(separator: ",").map { Int($0)! }
        let model = MLPClassifier(widths: widths, activation: MLPActivation(rawValue: f.metadata["activation"]!)!)
        for s in model.params.specs {
            let v = try f.floats("param." + s.key)
            XCTAssertEqual(v.count, s.shape.reduce(1, *), "\(name): \(s.key)")
            v.withUnsafeBufferPointer { model.params[s.key].update(from: $0.baseAddress!, count: v.count) }
        }
        let x = try f.floats("x"), labels = try f.integers("labels").map(Int32.init)
        let batch = labels.count
        let logits = Array(UnsafeBufferPointer(start: model.forward(x, batch: batch), count: batch * model.classes))
        let e1 = relativeError(logits, try f.floats("logits"))
        XCTAssertLessThanOrEqual(e1, 1e-4, "\(name): logits max |Δ|/max|ref| = \(e1)")
        let feats = Array(UnsafeBufferPointer(start: model.features, count: batch * model.featureWidth))
        let e2 = relativeError(feats, try f.floats("features"))
        XCTAssertLessThanOrEqual(e2, 1e-4, "\(name): features max |Δ|/max|ref| = \(e2)")
        let loss = model.lossAndGradients(x, labels: labels, batch: batch)
        let refLoss = Double(f.metadata["loss"]!)!
        XCTAssertLessThanOrEqual(abs(loss - refLoss) / refLoss, 1e-5, "\(name): loss \(loss) vs \(refLoss)")
        for s in model.params.specs {
            let n = s.shape.reduce(1, *)
            let g = Array(UnsafeBufferPointer(start: model.grads[s.key], count: n))
            let e = relativeError(g, try f.floats("grad." + s.key))
            XCTAssertLessThanOrEqual(e, 1e-4, "\(name): grad \(s.key) max |Δ|/max|ref| = \(e)")
        }
    }

    func testReLUAgainstTorchAutograd() throws { try fixtureCase("mlp_relu") }
    func testSiLUAgainstTorchAutograd() throws { try fixtureCase("mlp_silu") }

    /// Central differences (h = 1e-2) of the Float32 loss against the analytic gradient on 40 seeded coordinates
    /// over every tensor of a SiLU net (smooth, so no ReLU kink can fall inside a difference):
    /// |fd − g| ≤ 2e-3·max(|g|, 1e-2) + 2e-4 (O(h²) truncation plus Float32 round-off of the loss over 2h).
    func testGradientMatchesFiniteDifferences() {
        let model = MLPClassifier(widths: [6, 8, 5, 4], activation: .silu, seed: 3)
        var rng = SplitMix64(seed: 11)
        let batch = 5
        let x = (0..<(batch * 6)).map { _ in 2 * rng.nextUnitFloat() - 1 }
        let labels: [Int32] = [0, 3, 1, 2, 3]
        model.lossAndGradients(x, labels: labels, batch: batch)
        let analytic = Array(UnsafeBufferPointer(start: model.grads.values, count: model.grads.count))
        let h: Float = 1e-2
        for _ in 0..<40 {
            let i = Int(rng.next() % UInt64(model.params.count))
            let p = model.params.values[i]
            model.params.values[i] = p + h
            let up = model.lossAndGradients(x, labels: labels, batch: batch)
            model.params.values[i] = p - h
            let down = model.lossAndGradients(x, labels: labels, batch: batch)
            model.params.values[i] = p
            let fd = (up - down) / Double(2 * h), g = Double(analytic[i])
            XCTAssertLessThanOrEqual(abs(fd - g), 2e-3 * max(abs(g), 1e-2) + 2e-4, "parameter \(i): finite difference \(fd) vs analytic \(g)")
        }
    }

    /// A separable 3-class problem: training must reach ≥ 95% accuracy (untrained: about chance).
    func testTrainingLearnsSeparableClasses() throws {
        let model = MLPClassifier(widths: [2, 16, 3], activation: .relu, seed: 1)
        let centres: [(Float, Float)] = [(-2, 0), (2, 0), (0, 2.5)]
        var rng = SplitMix64(seed: 5)
        func draw(_ x: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Int32>, _ n: Int) {
            for b in 0..<n {
                let c = Int(rng.next() % 3)
                x[2 * b] = centres[c].0 + (rng.nextUnitFloat() - 0.5)
                x[2 * b + 1] = centres[c].1 + (rng.nextUnitFloat() - 0.5)
                y[b] = Int32(c)
            }
        }
        var o = MLPTrainingOptions()
        o.steps = 200; o.batch = 32; o.lr = 1e-2; o.warmup = 10
        var last = 0.0
        try model.train(o, makeBatch: { _, x, y in draw(x, y, o.batch) }, onStep: { _, l in last = l })
        var x = [Float](repeating: 0, count: 600), y = [Int32](repeating: 0, count: 300), pred = [Int](repeating: 0, count: 300)
        draw(&x, &y, 300)
        model.predict(x, batch: 300, into: &pred)
        let acc = Double(zip(pred, y).filter { $0 == Int($1) }.count) / 300
        XCTAssertGreaterThanOrEqual(acc, 0.95, "accuracy \(acc), last loss \(last)")
    }

    func testSaveLoadRoundTripAndErrors() throws {
        let model = MLPClassifier(widths: [5, 7, 3], activation: .silu, seed: 9)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mlp-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("m.safetensors").path
        try model.save(to: path, metadata: ["purpose": "test"])
        let back = try MLPClassifier.load(from: path)
        XCTAssertEqual(back.widths, [5, 7, 3])
        XCTAssertEqual(back.activation, .silu)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: back.params.values, count: back.params.count)),
                       Array(UnsafeBufferPointer(start: model.params.values, count: model.params.count)))
        // A file without the widths metadata names the field.
        var w = SafetensorsWriter()
        w.add("layers.0.weight", shape: [1, 1], floats: [0])
        let bad = dir.appendingPathComponent("bad.safetensors").path
        try w.write(to: bad)
        XCTAssertThrowsError(try MLPClassifier.load(from: bad)) { e in
            XCTAssertTrue("\(e)".contains("widths") && "\(e)".contains("bad.safetensors"), "\(e)")
        }
    }
}
