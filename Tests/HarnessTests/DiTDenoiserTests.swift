import DiT
import Diffusion
import Foundation
@testable import Harness
import XCTest

/// A DiT as a `Denoiser` (the second seam) against closed forms: σ ↔ t (σ_j = √(1/ᾱ_j − 1) calls the model at
/// t = j with input y/√(1 + σ²)), ε ↔ D (D = y − σ·ε̂), CFG (u + s·(c − u) on channels 0..<min(3, C)), the
/// learned-variance fraction (v + 1)/2, and NFE counted once per batched call.
final class DiTDenoiserTests: XCTestCase {
    static let config = DiTConfig(name: "tiny", inputSize: 4, patchSize: 2, inChannels: 4, hiddenSize: 16, depth: 1, numHeads: 2,
                                  numClasses: 3, numExperts: 4, numExpertsPerTok: 2)

    func testDenoiserIsTheEpsilonModelInVEUnits() throws {
        let c = Self.config
        let model = try DiTModel(config: c, source: .random(seed: 2))
        let d = c.inChannels * c.inputSize * c.inputSize, batch = 2
        let labels: [Int32] = [1, 2]
        let eps = DiTEpsilonModel(model: model, labels: labels, cfgScale: 2.5)
        let denoiser = CountingDenoiser(VPEpsilonDenoiser(eps))
        let table = DDPMTable()
        let steps = [37, 800]
        let sigma = steps.map { table.sigmas[$0] }
        var x = [Float](repeating: 0, count: batch * d)
        for i in 0..<x.count { x[i] = Float(sin(Double(i) * 0.7)) * 3 }
        var out = [Float](repeating: 0, count: batch * d), frac = [Float](repeating: 0, count: batch * d)
        XCTAssertTrue(denoiser.denoise(x, sigma: sigma, batch: batch, into: &out, varianceFraction: &frac))
        XCTAssertEqual(denoiser.calls, 1)
        XCTAssertEqual(eps.calls, 1)

        // Reference: one forward of [x_t, x_t] with labels [y, null] at t = j, by hand.
        let outImage = c.outChannels * c.inputSize * c.inputSize, plane = c.inputSize * c.inputSize
        var xt = [Float](repeating: 0, count: 2 * batch * d)
        for b in 0..<batch {
            let scale = Float(1 / (1 + sigma[b] * sigma[b]).squareRoot())
            for i in 0..<d { xt[b * d + i] = x[b * d + i] * scale; xt[(batch + b) * d + i] = x[b * d + i] * scale }
        }
        let t = (steps + steps).map(Float.init), y = labels + [3, 3]
        var raw = [Float](repeating: 0, count: 2 * batch * outImage)
        try model.forward(x: xt, t: t, y: y, batch: 2 * batch, out: &raw)
        for b in 0..<batch {
            for i in 0..<d {
                let cond = raw[b * outImage + i], uncond = raw[(batch + b) * outImage + i]
                let e = i < 3 * plane ? uncond + 2.5 * (cond - uncond) : cond
                let expected = x[b * d + i] - Float(sigma[b]) * e
                XCTAssertEqual(out[b * d + i], expected, accuracy: 1e-4 * max(1, abs(expected)), "sample \(b) element \(i)")
                XCTAssertEqual(frac[b * d + i], (raw[b * outImage + d + i] + 1) / 2, accuracy: 1e-6)
            }
        }
    }

    /// A model call failure (here: a label outside the table) yields NaN and is kept for the caller.
    func testModelFailureIsReportedNotFatal() throws {
        let model = try DiTModel(config: Self.config, source: .random(seed: 2))
        let eps = DiTEpsilonModel(model: model, labels: [9])
        let d = eps.dimension
        var out = [Float](repeating: 0, count: d)
        eps.predictNoise([Float](repeating: 0, count: d), timesteps: [10], batch: 1, into: &out)
        XCTAssertTrue(out.allSatisfy(\.isNaN))
        XCTAssertNotNil(eps.failure)
    }

    /// Routing per denoising step: the sampler's k-th model call is step k.
    func testOnCallCountsDenoisingSteps() throws {
        let model = try DiTModel(config: Self.config, source: .random(seed: 2))
        let eps = DiTEpsilonModel(model: model, labels: [0, 1], cfgScale: 1.5)
        var seen: [Int] = []
        eps.onCall = { seen.append($0) }
        let context = SamplerContext(denoiser: CountingDenoiser(VPEpsilonDenoiser(eps)), noise: SeededNormalNoise(seed: 1))
        var x = [Float](repeating: 0, count: 2 * eps.dimension)
        let report = UpstreamSampler.ddpm(steps: 7).sample(&x, batch: 2, context: context)
        XCTAssertEqual(report.nfe, 7)
        XCTAssertEqual(seen, Array(0..<7))
        XCTAssertTrue(x.allSatisfy(\.isFinite))
    }
}
