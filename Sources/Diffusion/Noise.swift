// Gaussian noise for the stochastic samplers. Seeded and reproducible: xoshiro256** seeded through splitmix64,
// normals by Marsaglia's polar method (no trigonometry, one log and one sqrt per pair).

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
}


/// Seeded standard-normal noise.
public final class SeededNormalNoise: NoiseSource {
    public var generator: Xoshiro256
    public init(seed: UInt64) { generator = Xoshiro256(seed: seed) }

    public func fillNormal(_ out: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 1 < count {
            let (a, b) = generator.normalPair()
            out[i] = Float(a); out[i + 1] = Float(b)
            i += 2
        }
        if i < count { out[i] = Float(generator.normalPair().0) }
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
