import Diffusion
import Foundation
import XCTest

/// The upstream DiT samplers on the VE denoiser seam against upstream's own VP update rules, written out here from
/// `gaussian_diffusion.py` (p_sample, ddim_sample) and `rectified_flow.py`, driven by exact ε and velocity models
/// of i.i.d. Gaussian data N(m, s²). Same noise stream on both sides; final samples within 1e-4 relative.
final class UpstreamSamplerTests: XCTestCase {
    static let m = -0.4, s = 0.3, d = 6, batch = 3

    /// E[ε | x_t] for x_t = √ᾱ·x₀ + √(1−ᾱ)·ε, with a fixed learned-variance fraction f.
    final class GaussianEpsilon: LearnedVarianceEpsilonModel, VelocityModel {
        let abar = DDPMSchedule(steps: 1000).alphasCumprod
        let fraction: Float
        init(fraction: Float) { self.fraction = fraction }
        var dimension: Int { UpstreamSamplerTests.d }
        func predictNoise(_ xt: UnsafePointer<Float>, timesteps: UnsafePointer<Double>, batch: Int, into out: UnsafeMutablePointer<Float>) {
            for b in 0..<batch {
                let a = abar[Int(timesteps[b])], m = UpstreamSamplerTests.m, s = UpstreamSamplerTests.s
                for i in 0..<dimension {
                    let x = Double(xt[b * dimension + i])
                    out[b * dimension + i] = Float((1 - a).squareRoot() * (x - a.squareRoot() * m) / (a * s * s + 1 - a))
                }
            }
        }
        func predictNoise(_ xt: UnsafePointer<Float>, timesteps: UnsafePointer<Double>, batch: Int,
                          into out: UnsafeMutablePointer<Float>, varianceFraction: UnsafeMutablePointer<Float>) {
            predictNoise(xt, timesteps: timesteps, batch: batch, into: out)
            varianceFraction.update(repeating: fraction, count: batch * dimension)
        }
        /// E[ε − x₀ | z_t] for z_t = (1−t)·x₀ + t·ε.
        func predictVelocity(_ z: UnsafePointer<Float>, time: UnsafePointer<Double>, batch: Int, into out: UnsafeMutablePointer<Float>) {
            for b in 0..<batch {
                let t = time[b], m = UpstreamSamplerTests.m, s = UpstreamSamplerTests.s
                let v = (1 - t) * (1 - t) * s * s + t * t
                for i in 0..<dimension {
                    let c = Double(z[b * dimension + i]) - (1 - t) * m
                    out[b * dimension + i] = Float(t * c / v - (m + (1 - t) * s * s * c / v))
                }
            }
        }
    }

    func runSeam(_ sampler: UpstreamSampler, model: GaussianEpsilon, rf: Bool = false) -> ([Float], Int) {
        let denoiser: Denoiser = rf ? RectifiedFlowDenoiser(model) : VPEpsilonDenoiser(model)
        let context = SamplerContext(denoiser: CountingDenoiser(denoiser), noise: SeededNormalNoise(seed: 42))
        var x = [Float](repeating: 0, count: Self.batch * Self.d)
        let report = sampler.sample(&x, batch: Self.batch, context: context)
        return (x, report.nfe)
    }

    /// Upstream's VP loop with the same noise draws (start, then one tensor per step with i > 0).
    func referenceVP(steps n: Int, ddim: Bool, learned: Bool, model: GaussianEpsilon) -> [Float] {
        let noise = SeededNormalNoise(seed: 42), count = Self.batch * Self.d
        var z = [Float](repeating: 0, count: count)
        noise.fillNormal(&z, count: count)
        var x = z.map(Double.init)
        let sch = DDPMSchedule(steps: n)
        var eps = [Float](repeating: 0, count: count), frac = [Float](repeating: 0, count: count)
        for i in stride(from: sch.timesteps.count - 1, through: 0, by: -1) {
            let ab = sch.abar(i), abPrev = sch.abar(i - 1), bp = sch.betaPrime(i)
            let xf = x.map(Float.init), t = [Double](repeating: Double(sch.timesteps[i]), count: Self.batch)
            model.predictNoise(xf, timesteps: t, batch: Self.batch, into: &eps, varianceFraction: &frac)
            let x0 = (0..<count).map { (1 / ab).squareRoot() * x[$0] - (1 / ab - 1).squareRoot() * Double(eps[$0]) }
            if ddim {
                let epsHat = (0..<count).map { ((1 / ab).squareRoot() * x[$0] - x0[$0]) / (1 / ab - 1).squareRoot() }
                x = (0..<count).map { x0[$0] * abPrev.squareRoot() + (1 - abPrev).squareRoot() * epsHat[$0] }
            } else {
                let c1 = bp * abPrev.squareRoot() / (1 - ab), c2 = (1 - abPrev) * (1 - bp).squareRoot() / (1 - ab)
                let logMin = sch.logPosteriorVarianceClipped(i), logMax = log(bp)
                let posterior = bp * (1 - abPrev) / (1 - ab)
                if i > 0 { noise.fillNormal(&z, count: count) }
                x = (0..<count).map {
                    let f = Double(frac[$0])
                    let sd = learned ? exp(0.5 * (f * logMax + (1 - f) * logMin)) : posterior.squareRoot()
                    return c1 * x0[$0] + c2 * x[$0] + (i > 0 ? sd * Double(z[$0]) : 0)
                }
            }
        }
        return x.map(Float.init)
    }

    func assertClose(_ a: [Float], _ b: [Float], _ what: String) {
        let scale = b.map { abs($0) }.max()!
        let err = zip(a, b).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(err / scale, 1e-4, "\(what): max |Δ|/max|ref| = \(err / scale)")
    }

    func testDDPMWithLearnedVarianceMatchesUpstream() {
        let model = GaussianEpsilon(fraction: 0.3)
        let (x, nfe) = runSeam(.ddpm(steps: 25), model: model)
        XCTAssertEqual(nfe, 25)
        assertClose(x, referenceVP(steps: 25, ddim: false, learned: true, model: model), "ddpm25 learned")
    }

    /// A model without variance channels falls back to the posterior variance (upstream's FIXED_SMALL).
    func testDDPMWithoutLearnedVarianceUsesThePosteriorVariance() {
        final class Plain: EpsilonModel {
            let inner = GaussianEpsilon(fraction: 0)
            var dimension: Int { inner.dimension }
            func predictNoise(_ xt: UnsafePointer<Float>, timesteps: UnsafePointer<Double>, batch: Int, into out: UnsafeMutablePointer<Float>) {
                inner.predictNoise(xt, timesteps: timesteps, batch: batch, into: out)
            }
        }
        let context = SamplerContext(denoiser: CountingDenoiser(VPEpsilonDenoiser(Plain())), noise: SeededNormalNoise(seed: 42))
        var x = [Float](repeating: 0, count: Self.batch * Self.d)
        _ = UpstreamSampler.ddpm(steps: 40).sample(&x, batch: Self.batch, context: context)
        assertClose(x, referenceVP(steps: 40, ddim: false, learned: false, model: GaussianEpsilon(fraction: 0)), "ddpm40 fixed")
    }

    func testDDIMMatchesUpstream() {
        let model = GaussianEpsilon(fraction: 0)
        for n in [10, 50] {
            let (x, nfe) = runSeam(.ddim(steps: n), model: model)
            XCTAssertEqual(nfe, n)
            assertClose(x, referenceVP(steps: n, ddim: true, learned: false, model: model), "ddim\(n)")
        }
    }

    func testRectifiedFlowEulerMatchesUpstream() {
        let model = GaussianEpsilon(fraction: 0), steps = 20, count = Self.batch * Self.d
        let (x, nfe) = runSeam(.rectifiedFlowEuler(steps: steps), model: model, rf: true)
        XCTAssertEqual(nfe, steps)
        // Upstream: z = ε; for i = S…1: z ← z − v(z, i/S)/S.
        var z = [Float](repeating: 0, count: count)
        SeededNormalNoise(seed: 42).fillNormal(&z, count: count)
        var v = [Float](repeating: 0, count: count)
        for i in stride(from: steps, through: 1, by: -1) {
            model.predictVelocity(z, time: [Double](repeating: Double(i) / Double(steps), count: Self.batch), batch: Self.batch, into: &v)
            for k in 0..<count { z[k] -= v[k] / Float(steps) }
        }
        assertClose(x, z, "rf\(steps)")
    }

    /// With the exact model, the deterministic samplers land on N(m, s²)-distributed data: many DDIM-50 samples
    /// have mean m and standard deviation s within sampling error.
    func testDDIMSamplesHaveTheDataMoments() {
        final class Wide: EpsilonModel {
            let inner = GaussianEpsilon(fraction: 0)
            var dimension: Int { inner.dimension }
            func predictNoise(_ xt: UnsafePointer<Float>, timesteps: UnsafePointer<Double>, batch: Int, into out: UnsafeMutablePointer<Float>) {
                inner.predictNoise(xt, timesteps: timesteps, batch: batch, into: out)
            }
        }
        let n = 500, d = Self.d
        let context = SamplerContext(denoiser: CountingDenoiser(VPEpsilonDenoiser(Wide())), noise: SeededNormalNoise(seed: 7))
        var x = [Float](repeating: 0, count: n * d)
        _ = UpstreamSampler.ddim(steps: 50).sample(&x, batch: n, context: context)
        let mean = x.map(Double.init).reduce(0, +) / Double(x.count)
        let sd = (x.map { (Double($0) - mean) * (Double($0) - mean) }.reduce(0, +) / Double(x.count)).squareRoot()
        XCTAssertEqual(mean, Self.m, accuracy: 4 * Self.s / Double(x.count).squareRoot())
        XCTAssertEqual(sd, Self.s, accuracy: 0.03)
    }
}
