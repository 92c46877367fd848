// Gaussian noise for the stochastic samplers. Seeded and reproducible: xoshiro256** seeded through splitmix64.
// Float32 noise (the per-step hot path) uses the Marsaglia–Tsang ziggurat with 128 layers, its layer index and
// value taken from disjoint bits of one 64-bit draw; Float64 normals use Marsaglia's polar method.

/// A source of standard-normal noise z ~ N(0, I).
public protocol NoiseSource: AnyObject {
    func fillNormal(_ out: UnsafeMutablePointer<Float>, count: Int)
}

/// Seeded xoshiro256** generator.
public struct Xoshiro256: RandomNumberGenerator, Sendable {
    private var s0, s1, s2, s3: UInt64

    public init(seed: UInt64) {
        var z = seed
        func splitmix(_ z: inout UInt64) -> UInt64 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var r = z
            r = (r ^ (r >> 30)) &* 0xBF58_476D_1CE4_E5B9
            r = (r ^ (r >> 27)) &* 0x94D0_49BB_1331_11EB
            return r ^ (r >> 31)
        }
        s0 = splitmix(&z); s1 = splitmix(&z); s2 = splitmix(&z); s3 = splitmix(&z)
    }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// Uniform in (−1, 1), 53-bit resolution.
    @inline(__always)
    mutating func symmetricUniform() -> Double {
        Double(Int64(bitPattern: next()) >> 10) * 0x1p-53
    }

    /// A pair of independent standard normals (Marsaglia polar).
    @inline(__always)
    public mutating func normalPair() -> (Double, Double) {
        while true {
            let u = symmetricUniform(), v = symmetricUniform()
            let s = u * u + v * v
            if s > 0 && s < 1 {
                let f = (-2 * dlog(s) / s).squareRoot()
                return (u * f, v * f)
            }
        }
    }

    public mutating func normal() -> Double { normalPair().0 }

    /// Uniform in (0, 1), 53-bit resolution (never 0, so −log u is finite).
    public mutating func uniform() -> Double { (Double(next() >> 11) + 0.5) * 0x1p-53 }
}


/// Seeded standard-normal noise.
public final class SeededNormalNoise: NoiseSource {
    public var generator: Xoshiro256
    public init(seed: UInt64) { generator = Xoshiro256(seed: seed) }

    public func fillNormal(_ out: UnsafeMutablePointer<Float>, count: Int) {
        let z = Ziggurat.shared
        for i in 0..<count { out[i] = z.normal(&generator) }
    }

    public func fillNormal(_ out: UnsafeMutablePointer<Double>, count: Int) {
        var i = 0
        while i + 1 < count {
            let (a, b) = generator.normalPair()
            out[i] = a; out[i + 1] = b
            i += 2
        }
        if i < count { out[i] = generator.normalPair().0 }
    }
}

/// z ≡ 0: turns a stochastic sampler into its conditional-mean recursion (used by the order-of-accuracy tests).
public final class ZeroNoise: NoiseSource {
    public init() {}
    public func fillNormal(_ out: UnsafeMutablePointer<Float>, count: Int) { out.update(repeating: 0, count: count) }
}

/// Marsaglia & Tsang (2000) ziggurat tables for the standard normal, 128 layers.
final class Ziggurat: @unchecked Sendable {
    static let shared = Ziggurat()
    let kn: [UInt32], wn: [Float], fn: [Float]
    static let r = 3.442619855899

    private init() {
        let m1 = 2147483648.0, vn = 9.91256303526217e-3
        var dn = Ziggurat.r, tn = dn
        var kn = [UInt32](repeating: 0, count: 128), wn = [Float](repeating: 0, count: 128), fn = [Float](repeating: 0, count: 128)
        let q = vn / dexp(-0.5 * dn * dn)
        kn[0] = UInt32((dn / q) * m1); kn[1] = 0
        wn[0] = Float(q / m1); wn[127] = Float(dn / m1)
        fn[0] = 1; fn[127] = Float(dexp(-0.5 * dn * dn))
        for i in stride(from: 126, through: 1, by: -1) {
            dn = (-2 * dlog(vn / dn + dexp(-0.5 * dn * dn))).squareRoot()
            kn[i + 1] = UInt32((dn / tn) * m1)
            tn = dn
            fn[i] = Float(dexp(-0.5 * dn * dn))
            wn[i] = Float(dn / m1)
        }
        self.kn = kn; self.wn = wn; self.fn = fn
    }

    @inline(__always)
    func normal(_ g: inout Xoshiro256) -> Float {
        while true {
            let u = g.next()
            let hz = Int32(truncatingIfNeeded: u >> 32), iz = Int(u & 127)
            if hz.magnitude < kn[iz] { return Float(hz) * wn[iz] }
            if let v = slow(hz, iz, &g) { return v }
        }
    }

    /// The rejection part: the base strip's tail (iz = 0) or a wedge test; nil means draw again.
    private func slow(_ hz: Int32, _ iz: Int, _ g: inout Xoshiro256) -> Float? {
        let x = Double(hz) * Double(wn[iz])
        if iz == 0 {
            while true {
                let a = -dlog(uniform01(&g)) / Ziggurat.r, b = -dlog(uniform01(&g))
                if b + b >= a * a { return Float(hz > 0 ? Ziggurat.r + a : -Ziggurat.r - a) }
            }
        }
        let f0 = Double(fn[iz]), f1 = Double(fn[iz - 1])
        return f0 + uniform01(&g) * (f1 - f0) < dexp(-0.5 * x * x) ? Float(x) : nil
    }

    /// Uniform in (0, 1].
    @inline(__always)
    private func uniform01(_ g: inout Xoshiro256) -> Double { (Double(g.next() >> 11) + 1) * 0x1p-53 }
}
