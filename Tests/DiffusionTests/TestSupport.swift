import Foundation
import XCTest
@testable import Diffusion

/// Diagonal Gaussian data N(m, diag v) in d dimensions: D(x;σ) = m + v/(v+σ²)·(x − m), exact.
/// Its probability-flow ODE has the closed form (x − m)/√(v + σ²) = const.
final class GaussianDenoiser: Denoiser {
    let m: [Double], v: [Double]
    init(m: [Double], v: [Double]) { self.m = m; self.v = v }
    var dimension: Int { m.count }

    func denoise(_ x: UnsafePointer<Float>, sigma: UnsafePointer<Double>, batch: Int, into out: UnsafeMutablePointer<Float>) {
        let d = dimension
        for b in 0..<batch {
            let s2 = sigma[b] * sigma[b]
            for i in 0..<d {
                out[b * d + i] = Float(m[i] + v[i] / (v[i] + s2) * (Double(x[b * d + i]) - m[i]))
            }
        }
    }

    /// Exact PF-ODE transport of x from level σa to σb.
    func transport(_ x: Double, coordinate i: Int, from sa: Double, to sb: Double) -> Double {
        m[i] + (x - m[i]) * ((v[i] + sb * sb) / (v[i] + sa * sa)).squareRoot()
    }

    /// Exact mean transport of the reverse SDE (RD/EM conditional mean) from σa to σb: (x − m) ∝ (v + σ²).
    func meanTransport(_ x: Double, coordinate i: Int, from sa: Double, to sb: Double) -> Double {
        m[i] + (x - m[i]) * (v[i] + sb * sb) / (v[i] + sa * sa)
    }
}

/// Least-squares slope of log(error) against log(N).
func logLogSlope(_ ns: [Int], _ errors: [Double]) -> Double {
    let xs = ns.map { log(Double($0)) }, ys = errors.map { log($0) }
    let mx = xs.reduce(0, +) / Double(xs.count), my = ys.reduce(0, +) / Double(ys.count)
    var sxy = 0.0, sxx = 0.0
    for (x, y) in zip(xs, ys) { sxy += (x - mx) * (y - my); sxx += (x - mx) * (x - mx) }
    return sxy / sxx
}

func fixtureURL(_ name: String) throws -> URL {
    guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures") else {
        struct MissingFixture: Error, CustomStringConvertible { let description: String }
        throw MissingFixture(description: "missing fixture Fixtures/\(name) (regenerate with the script in tools/)")
    }
    return url
}

func loadJSON(_ name: String) throws -> [String: Any] {
    let data = try Data(contentsOf: try fixtureURL(name))
    guard let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        XCTFail("fixture \(name) is not a JSON object")
        return [:]
    }
    return obj
}
