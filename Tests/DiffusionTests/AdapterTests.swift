import XCTest
@testable import Diffusion

/// The VP ε and rectified-flow adapters, driven by exact models of the same Gaussian data, reproduce the exact
/// VE denoiser: the unit and time mappings (σ_y = 2σ_x, c_in = 1/√(1+σ²), t = σ/(1+σ)) are what is tested.
/// Tolerance: absolute 1e-5 (Float32 arithmetic).
final class AdapterTests: XCTestCase {
    /// Gaussian data in model units y: m_y, v_y.
    let my: [Double] = [0.2, -0.4, 0.6], vy: [Double] = [0.1, 0.3, 0.02]
    var veInX: GaussianDenoiser {
        // x = (y + 1)/2 → m_x = (m_y + 1)/2, v_x = v_y/4.
        GaussianDenoiser(m: my.map { ($0 + 1) / 2 }, v: vy.map { $0 / 4 })
    }

    final class ExactEpsilon: EpsilonModel {
        let truth: GaussianDenoiser, table: DDPMTable
        init(_ t: GaussianDenoiser, _ table: DDPMTable) { truth = t; self.table = table }
        var dimension: Int { truth.dimension }
        func predictNoise(_ xt: UnsafePointer<Float>, timesteps: UnsafePointer<Double>, batch: Int, into out: UnsafeMutablePointer<Float>) {
            let d = dimension
            for b in 0..<batch {
                let s = table.sigmas[Int(timesteps[b])]
                var y = (0..<d).map { Float(Double(xt[b * d + $0]) * (1 + s * s).squareRoot()) }   // VE state
                var den = [Float](repeating: 0, count: d)
                var sig = [s]
                truth.denoise(&y, sigma: &sig, batch: 1, into: &den)
                for i in 0..<d { out[b * d + i] = Float((Double(y[i]) - Double(den[i])) / s) }
            }
        }
    }

    final class ExactVelocity: VelocityModel {
        let truth: GaussianDenoiser
        init(_ t: GaussianDenoiser) { truth = t }
        var dimension: Int { truth.dimension }
        func predictVelocity(_ z: UnsafePointer<Float>, time: UnsafePointer<Double>, batch: Int, into out: UnsafeMutablePointer<Float>) {
            let d = dimension
            for b in 0..<batch {
                let t = time[b]
                var y = (0..<d).map { Float(Double(z[b * d + $0]) / (1 - t)) }
                var den = [Float](repeating: 0, count: d)
                var sig = [t / (1 - t)]
                truth.denoise(&y, sigma: &sig, batch: 1, into: &den)
                for i in 0..<d { out[b * d + i] = Float((Double(z[b * d + i]) - Double(den[i])) / t) }
            }
        }
    }

    func testDDPMTableEndpoints() {
        let t = DDPMTable()
        XCTAssertEqual(t.sigmas[0], 0.0100, accuracy: 5e-5)
        XCTAssertEqual(t.sigmas[999], 157.4, accuracy: 0.1)
        XCTAssertEqual(t.nearestIndex(t.sigmas[500] * 1.0001), 500)
    }

    func testVPEpsilonAdapterInZeroOneUnits() {
        let table = DDPMTable()
        let inY = GaussianDenoiser(m: my, v: vy)
        let adapter = VPEpsilonDenoiser(ExactEpsilon(inY, table), table: table, units: .zeroOneToMinusOneOne)
        let x: [Float] = [0.3, 0.9, -0.2, 1.5, 0.1, 0.4]
        let sigma = [table.sigmas[100] / 2, table.sigmas[700] / 2]          // table entries: no rounding
        var got = [Float](repeating: 0, count: 6), want = got
        adapter.denoise(x, sigma: sigma, batch: 2, into: &got)
        veInX.denoise(x, sigma: sigma, batch: 2, into: &want)
        for (a, b) in zip(got, want) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    func testRectifiedFlowAdapter() {
        let inY = GaussianDenoiser(m: my, v: vy)
        let adapter = RectifiedFlowDenoiser(ExactVelocity(inY), units: .zeroOneToMinusOneOne)
        let x: [Float] = [0.3, 0.9, -0.2, 1.5, 0.1, 0.4]
        let sigma = [0.07, 3.0]
        var got = [Float](repeating: 0, count: 6), want = got
        adapter.denoise(x, sigma: sigma, batch: 2, into: &got)
        veInX.denoise(x, sigma: sigma, batch: 2, into: &want)
        for (a, b) in zip(got, want) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    final class ExactScore: ScoreModel {
        let truth: GaussianDenoiser
        init(_ t: GaussianDenoiser) { truth = t }
        var dimension: Int { truth.dimension }
        func score(_ x: UnsafePointer<Float>, sigma: UnsafePointer<Double>, batch: Int, into out: UnsafeMutablePointer<Float>) {
            truth.denoise(x, sigma: sigma, batch: batch, into: out)
            for b in 0..<batch { for i in 0..<dimension { let k = b * dimension + i; out[k] = Float((Double(out[k]) - Double(x[k])) / (sigma[b] * sigma[b])) } }
        }
    }

    func testVEScoreAdapter() {
        let adapter = VEScoreDenoiser(ExactScore(veInX))
        let x: [Float] = [0.3, 0.9, -0.2, 1.5, 0.1, 0.4]
        let sigma = [0.05, 2.0]
        var got = [Float](repeating: 0, count: 6), want = got
        adapter.denoise(x, sigma: sigma, batch: 2, into: &got)
        veInX.denoise(x, sigma: sigma, batch: 2, into: &want)
        for (a, b) in zip(got, want) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }
}
