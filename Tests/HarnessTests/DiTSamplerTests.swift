import Foundation
import Diffusion
import XCTest
@testable import Harness

/// DiT-MoE's own sampling loops (spec ditmoe §4) against closed forms.
final class DiTSamplerTests: XCTestCase {
    /// Respacing "N" with Python's half-to-even round of an accumulated stride (spec §4.1 and pitfall 11).
    func testRespacingMatchesUpstream() {
        let s250 = DDPMSchedule(steps: 250).timesteps
        XCTAssertEqual(s250.count, 250)
        XCTAssertEqual(Array(s250.prefix(3)), [0, 4, 8])
        XCTAssertEqual(Array(s250.suffix(4)), [987, 991, 995, 999])
        let s50 = DDPMSchedule(steps: 50).timesteps
        XCTAssertEqual(Array(s50.prefix(5)), [0, 20, 41, 61, 82])
        XCTAssertEqual(Array(s50.suffix(3)), [958, 979, 999])
        // ᾱ_999 of the linear 1e-4…0.02 schedule (spec: 4.04e-5).
        XCTAssertEqual(DDPMSchedule(steps: 10).alphasCumprod[999], 4.04e-5, accuracy: 0.01e-5)
    }

    /// With a model that predicts ε exactly for data x0 ≡ c (ε = (x − √ᾱ c)/√(1−ᾱ)), DDIM (η = 0) lands on c
    /// (to 1e-4 absolute, float32 state), and rectified flow with v = ε − x0 = (z − c)/t lands on c.
    func testSamplersRecoverConstantDataWithAnOracleModel() throws {
        let c: Float = 0.7
        for sampler in [DiTSampler.ddim, .rectifiedFlow] {
            let run = DiTSamplerRun(sampler: sampler, steps: 20, cfgScale: 1.5, channels: 1, side: 2, outChannels: 2, nullClass: 10)
            let schedule = DDPMSchedule(steps: 20)
            var calls = 0
            let x = try run.sample(labels: [3, 4], seed: 1, model: { x, t, _, batch, _, out in
                calls += 1
                for b in 0..<batch {
                    for j in 0..<4 {
                        let xv = Double(x[b * 4 + j])
                        if sampler == .rectifiedFlow {
                            out[b * 8 + j] = Float((xv - Double(c)) / Double(t[b]))
                        } else {
                            let ab = schedule.alphasCumprod[Int(t[b])]
                            out[b * 8 + j] = Float((xv - ab.squareRoot() * Double(c)) / (1 - ab).squareRoot())
                        }
                        out[b * 8 + 4 + j] = 0
                    }
                }
            })
            XCTAssertEqual(calls, 20, "one model call per step")
            for v in x { XCTAssertEqual(v, c, accuracy: 1e-4, "\(sampler)") }
        }
    }
}
