import XCTest
@testable import Diffusion

/// Exact NFE, read from the counting wrapper, for every integrator (vanilla: integrator + 1 Tweedie) and for DLG
/// (n_skip + integrator + 1 per block; warm-up not counted).
final class NFETests: XCTestCase {
    let testbed = LowRankGaussianMixture(LowRankMixtureSpec(dimension: 6, components: 3, rank: 2, seed: 1), levelSigmaMax: 50)

    func testVanillaNFE() throws {
        let cases: [(Integrator, Int)] = [
            (.kar1(gridPoints: 6), 2 * 6 - 2), (.kar2(gridPoints: 7, churn: .dmcmc), 2 * 7 - 2),
            (.probabilityFlow(steps: 9), 10), (.reverseDiffusion(steps: 4), 5), (.eulerMaruyama(steps: 11), 12),
        ]
        for (method, expected) in cases {
            let c = SamplerContext(denoiser: CountingDenoiser(testbed), noise: SeededNormalNoise(seed: 5))
            var out = [Float](repeating: 0, count: 4 * 6)
            let r = try out.withUnsafeMutableBufferPointer {
                try sampleVanilla(method, batch: 4, sigmaMax: 50, finish: FinishSettings(), context: c, into: $0.baseAddress!)
            }
            XCTAssertEqual(r.nfe, expected, "\(method)")
            XCTAssertEqual(c.denoiser.calls, expected, "\(method)")
            XCTAssertEqual(c.denoiser.sampleEvaluations, 4 * expected, "\(method)")
            XCTAssertEqual(method.plannedNFE.map { $0 + 1 }, expected)
            XCTAssertTrue(out.allSatisfy { $0.isFinite })
        }
        let c = SamplerContext(denoiser: CountingDenoiser(testbed), noise: SeededNormalNoise(seed: 5))
        var out = [Float](repeating: 0, count: 4 * 6)
        let r = try out.withUnsafeMutableBufferPointer {
            try sampleVanilla(.rk45(rtol: 1e-3, atol: 1e-3), batch: 4, sigmaMax: 50, finish: FinishSettings(), context: c,
                              into: $0.baseAddress!)
        }
        XCTAssertEqual(r.nfe, try XCTUnwrap(r.rk45).nfev + 1)
    }

    func testDLGNFE() throws {
        for method in [Integrator.kar1(gridPoints: 4), .kar2(gridPoints: 5, churn: .dmcmc), .probabilityFlow(steps: 3),
                       .reverseDiffusion(steps: 3), .eulerMaruyama(steps: 3), .rk45(rtol: 1e-2, atol: 1e-2)] {
            let c = SamplerContext(denoiser: CountingDenoiser(testbed), noise: SeededNormalNoise(seed: 9))
            let chains = DLGChains(chains: 3, estimator: testbed, context: c)
            let s = DLGSettings(epsilon: 0.5, nSkip: 4)
            let warm = chains.warmUp(s)
            XCTAssertEqual(warm, 37 + 20)                                 // KAR2(N=20) + 10 + 10 Langevin steps
            c.denoiser.resetCounts()
            var out = [Float](repeating: 0, count: 3 * 6)
            for _ in 0..<2 {
                let before = c.denoiser.calls
                let r = try out.withUnsafeMutableBufferPointer {
                    try chains.nextBlock(s, integrator: method, finish: FinishSettings(), into: $0.baseAddress!)
                }
                let integ = method.plannedNFE ?? r.integrator.rk45!.nfev
                XCTAssertEqual(r.nfe, 4 + integ + 1, "\(method)")
                XCTAssertEqual(c.denoiser.calls - before, r.nfe, "\(method)")
            }
        }
    }

    /// KAR2 with S_churn = 0 is KAR1 exactly (γ = 0, the drawn noise is multiplied by 0).
    func testKAR2WithoutChurnIsKAR1() throws {
        let model = GaussianDenoiser(m: [0.5, 0.3], v: [0.05, 0.2])
        var a: [Float] = [3, -2, 1, 0.5], b = a
        let c1 = SamplerContext(denoiser: CountingDenoiser(model), noise: SeededNormalNoise(seed: 1))
        let c2 = SamplerContext(denoiser: CountingDenoiser(model), noise: SeededNormalNoise(seed: 2))
        _ = a.withUnsafeMutableBufferPointer { kar1($0.baseAddress!, start: [5, 1], gridPoints: 10, context: c1) }
        _ = b.withUnsafeMutableBufferPointer {
            kar2($0.baseAddress!, start: [5, 1], gridPoints: 10, churn: ChurnSettings(churn: 0, tMin: 0.05, tMax: 1, noise: 1.007), context: c2)
        }
        XCTAssertEqual(a, b)
    }

    /// Karras grid: N points, σ_0 = s, σ_{N−2} = 0.01, σ_{N−1} = 0 (rel. 1e-12); level set: σ_0 = σ_max,
    /// σ_999 = 0.01·(σ_max/0.01)^0.001 (0.010086 for σ_max 50, 0.010105 for 348).
    func testSchedules() {
        let g = karrasSigmas(start: 50, gridPoints: 6)
        XCTAssertEqual(g.count, 6)
        XCTAssertEqual(g[0], 50, accuracy: 1e-12 * 50)
        XCTAssertEqual(g[4], 0.01, accuracy: 1e-14)
        XCTAssertEqual(g[5], 0)
        let levels = NoiseLevels(sigmaMax: 50)
        XCTAssertEqual(levels[0], 50, accuracy: 1e-12)
        XCTAssertEqual(levels[999], 0.010086, accuracy: 5e-7)
        XCTAssertEqual(NoiseLevels(sigmaMax: 348)[999], 0.010105, accuracy: 5e-7)
        let sde = VESDE(start: 50)
        XCTAssertEqual(sde.discreteSigma(0, steps: 10), 0.01, accuracy: 1e-15)
        XCTAssertEqual(sde.discreteSigma(9, steps: 10), 50, accuracy: 1e-12)
    }
}
