import XCTest
@testable import Diffusion

/// The Swift Dormand–Prince reproduces scipy.integrate.solve_ivp(method='RK45') on a fixed problem
/// (fixture: tools/rk45_fixture.py). Tolerances: nfev and step count exact; step times relative 1e-9;
/// final state absolute 1e-9.
final class RK45Tests: XCTestCase {
    func testReproducesScipyStepSequence() throws {
        let fx = try loadJSON("rk45_steps.json")
        let starts = fx["starts"] as! [Double], m = fx["m"] as! [Double], v = fx["v"] as! [Double]
        let y0 = fx["y0"] as! [Double]
        let l = starts.map { log($0 / 0.01) }
        let d = m.count
        for run in fx["runs"] as! [[String: Any]] {
            let tol = run["tol"] as! Double
            var y = y0
            let stats = try y.withUnsafeMutableBufferPointer { yp in
                try solveRK45(dimension: y0.count, from: 1, to: 1e-5, y: yp.baseAddress!, rtol: tol, atol: tol) { t, yy, out in
                    for b in 0..<starts.count {
                        let s = 0.01 * exp(t * l[b]), s2 = s * s
                        for i in 0..<d { out[b * d + i] = l[b] * s2 / (v[i] + s2) * (yy[b * d + i] - m[i]) }
                    }
                }
            }
            let times = run["times"] as! [Double]
            XCTAssertEqual(stats.nfev, run["nfev"] as! Int, "nfev at tol \(tol)")
            XCTAssertEqual(stats.times.count, times.count, "accepted steps at tol \(tol)")
            XCTAssertEqual(stats.nfev, 2 + 6 * (stats.acceptedSteps + stats.rejectedSteps))
            for (a, b) in zip(stats.times, times) { XCTAssertEqual(a, b, accuracy: 1e-9 * max(abs(b), 1e-5)) }
            for (a, b) in zip(y, run["y_end"] as! [Double]) { XCTAssertEqual(a, b, accuracy: 1e-9) }
        }
    }

    /// The sampler's RK45: NFE counted at the model equals the solver's nfev (batch-coupled, one call per f).
    func testSamplerNFEIsNfev() throws {
        let model = GaussianDenoiser(m: [0.5, 0.2], v: [0.05, 0.01])
        let c = SamplerContext(denoiser: CountingDenoiser(model), noise: SeededNormalNoise(seed: 3))
        var x: [Float] = [40, -30, 10, 5, 1, 2]
        let report = try x.withUnsafeMutableBufferPointer {
            try rk45($0.baseAddress!, start: [50, 50, 50], rtol: 1e-4, atol: 1e-4, context: c)
        }
        let stats = try XCTUnwrap(report.rk45)
        XCTAssertEqual(report.nfe, stats.nfev)
        XCTAssertEqual(c.denoiser.calls, stats.nfev)
        XCTAssertEqual(c.denoiser.sampleEvaluations, 3 * stats.nfev)
    }
}
