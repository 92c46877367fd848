import Tensor
import CBLAS
import Dispatch

// The exact-score testbed: closed-form D(x;σ), ∇log p_σ, log p_σ and the data moments of a low-rank Gaussian
// mixture (parameters in LowRankMixtureParameters.swift). Computation is float64; the `Denoiser` face converts.
//
// With p_σ = Σ_k π_k·N(μ_k, C_k + σ²I) and a = δ² + σ², in U_k's basis C_k + σ²I has eigenvalues λ_{k,i} + a
// (r of them) and a (d − r times). For c_k = U_kᵀ(x − μ_k) and q_k = ‖x − μ_k‖²:
//   log N_k(x) = −½[Σ_i c_{k,i}²/(λ_{k,i}+a) + (q_k − ‖c_k‖²)/a + Σ_i log(λ_{k,i}+a) + (d−r)·log a + d·log 2π]
//   E[x₀ | x, k] = μ_k + U_k·diag((λ_{k,i}+δ²)/(λ_{k,i}+a))·c_k + (δ²/a)·(x − μ_k − U_k c_k)
//   D(x;σ) = Σ_k w_k(x)·E[x₀ | x, k],  w = softmax_k(log π_k + log N_k(x))
// Cost per sample O(K·d·r): linear in d.

public final class LowRankGaussianMixture: Denoiser, NoiseLevelEstimator {
    public let parameters: LowRankMixtureParameters
    public let levels: NoiseLevels
    public var dimension: Int { parameters.dimension }

    let d: Int, r: Int, k: Int, kr: Int
    let delta2: Double
    /// [d, K·r] row-major: column k·r+i is U_k's column i.
    let basis: [Double]
    /// U_kᵀμ_k, [K·r].
    let meanProjection: [Double]
    let logWeights: [Double]
    // Level tables for the σ-step: 1/(λ_{k,i}+δ²+σ_l²) as [K·r][L], log-determinants [K][L], 1/(δ²+σ_l²) [L].
    let levelInverse: [Double], levelLogDet: [Double], levelComplementInverse: [Double]

    // Batch workspace, grown on demand (not thread-safe: one sampler per instance).
    private var capacity = 0
    private var x64 = DoubleBuffer(0), proj = DoubleBuffer(0), sq = DoubleBuffer(0)
    private var coef = DoubleBuffer(0), wmu = DoubleBuffer(0), out64 = DoubleBuffer(0)

    /// `levelSigmaMax`: σ_max of the DLG level set (1000 levels from σ_min 0.01).
    public init(_ p: LowRankMixtureParameters, levelSigmaMax: Double = 50, levelCount: Int = 1000) {
        parameters = p
        d = p.dimension; r = p.rank; k = p.components; kr = p.rank * p.components
        delta2 = p.isotropicVariance
        var basis = [Double](repeating: 0, count: d * kr)
        var mp = [Double](repeating: 0, count: kr)
        for c in 0..<k {
            for row in 0..<d {
                for i in 0..<r {
                    let u = p.bases[c][row * r + i]
                    basis[row * kr + c * r + i] = u
                    mp[c * r + i] += u * p.means[c * d + row]
                }
            }
        }
        self.basis = basis
        meanProjection = mp
        logWeights = p.weights.map { $0 > 0 ? dlog($0) : -Double.infinity }
        levels = NoiseLevels(sigmaMin: 0.01, sigmaMax: levelSigmaMax, count: levelCount)
        // Component-major tables so the level loop is a contiguous axpy over l.
        let lcount = levelCount
        var inv = [Double](repeating: 0, count: k * r * lcount), ld = [Double](repeating: 0, count: k * lcount)
        var cinv = [Double](repeating: 0, count: lcount)
        for l in 0..<lcount {
            let a = p.isotropicVariance + levels[l] * levels[l]
            cinv[l] = 1 / a
            for c in 0..<k {
                var logdet = Double(d - r) * dlog(a)
                for i in 0..<r {
                    let v = p.eigenvalues[c * r + i] + a
                    inv[(c * r + i) * lcount + l] = 1 / v
                    logdet += dlog(v)
                }
                ld[c * lcount + l] = logdet
            }
        }
        levelInverse = inv; levelLogDet = ld; levelComplementInverse = cinv
    }

    public convenience init(_ spec: LowRankMixtureSpec, levelSigmaMax: Double = 50) {
        self.init(spec.makeParameters(), levelSigmaMax: levelSigmaMax)
    }

    private func reserve(_ batch: Int) {
        guard batch > capacity else { return }
        capacity = batch
        x64 = DoubleBuffer(batch * d); proj = DoubleBuffer(batch * kr); sq = DoubleBuffer(batch * k)
        coef = DoubleBuffer(batch * kr); wmu = DoubleBuffer(batch * k); out64 = DoubleBuffer(batch * d)
    }

    /// c_{b,k} = U_kᵀ(x_b − μ_k) into proj, q_{b,k} = ‖x_b − μ_k‖² into sq, for samples lo..<hi.
    private func project(_ x: UnsafePointer<Double>, _ lo: Int, _ hi: Int) {
        guard hi > lo else { return }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(hi - lo), Int32(kr), Int32(d),
                    1, x + lo * d, Int32(d), basis, Int32(kr), 0, proj.p + lo * kr, Int32(kr))
        parameters.means.withUnsafeBufferPointer { mu in
            for b in lo..<hi {
                let xb = x + b * d, pb = proj.p + b * kr
                for j in 0..<kr { pb[j] -= meanProjection[j] }
                for c in 0..<k {
                    var s = 0.0
                    let m = mu.baseAddress! + c * d
                    for i in 0..<d { let t = xb[i] - m[i]; s += t * t }
                    sq.p[b * k + c] = s
                }
            }
        }
    }

    /// Runs body(lo, hi) over disjoint sample ranges, on two threads when the batch is large enough.
    /// The per-sample workspace rows are disjoint, so workers share the buffers.
    private func parallelRanges(_ batch: Int, _ body: (Int, Int) -> Void) {
        if batch < 32 { body(0, batch); return }
        let half = batch / 2
        DispatchQueue.concurrentPerform(iterations: 2) { w in body(w == 0 ? 0 : half, w == 0 ? half : batch) }
    }

    /// log π_k + log N_k(x_b; σ) without the −(d/2)·log 2π constant, for every k, into `out` (K values).
    @inline(__always)
    private func componentLogLikelihoods(sample b: Int, sigma: Double, into out: UnsafeMutablePointer<Double>) {
        let a = delta2 + sigma * sigma
        let pb = proj.p + b * kr
        for c in 0..<k {
            var quad = 0.0, cc = 0.0, logdet = Double(d - r) * dlog(a)
            for i in 0..<r {
                let ci = pb[c * r + i], v = parameters.eigenvalues[c * r + i] + a
                quad += ci * ci / v
                cc += ci * ci
                logdet += dlog(v)
            }
            quad += (sq.p[b * k + c] - cc) / a
            out[c] = logWeights[c] - 0.5 * (quad + logdet)
        }
    }

    /// D(x;σ) in float64: x and out are [batch, d].
    public func denoise64(_ x: UnsafePointer<Double>, sigma: UnsafePointer<Double>, batch: Int,
                          into out: UnsafeMutablePointer<Double>) {
        reserve(batch)
        parallelRanges(batch) { lo, hi in denoiseRows(x, sigma: sigma, lo, hi, into: out) }
    }

    private func denoiseRows(_ x: UnsafePointer<Double>, sigma: UnsafePointer<Double>, _ lo: Int, _ hi: Int,
                             into out: UnsafeMutablePointer<Double>) {
        guard hi > lo else { return }
        project(x, lo, hi)
        withUnsafeTemporaryAllocation(of: Double.self, capacity: k) { llb in
            let ll = llb.baseAddress!
            for b in lo..<hi {
                let s2 = sigma[b] * sigma[b], a = delta2 + s2, g = delta2 / a
                componentLogLikelihoods(sample: b, sigma: sigma[b], into: ll)
                var mx = -Double.infinity
                for c in 0..<k { mx = max(mx, ll[c]) }
                var z = 0.0
                for c in 0..<k { ll[c] = dexp(ll[c] - mx); z += ll[c] }
                let pb = proj.p + b * kr, cb = coef.p + b * kr
                for c in 0..<k {
                    let w = ll[c] / z
                    wmu.p[b * k + c] = w * (1 - g)
                    for i in 0..<r {
                        let lam = parameters.eigenvalues[c * r + i] + delta2
                        cb[c * r + i] = w * (lam / (lam + s2) - g) * pb[c * r + i]
                    }
                }
                let xb = x + b * d, ob = out + b * d
                for i in 0..<d { ob[i] = g * xb[i] }
            }
        }
        // out += W·M (means) + Coef·Uᵀ
        let n = Int32(hi - lo)
        parameters.means.withUnsafeBufferPointer { mu in
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, Int32(d), Int32(k),
                        1, wmu.p + lo * k, Int32(k), mu.baseAddress, Int32(d), 1, out + lo * d, Int32(d))
        }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, Int32(d), Int32(kr),
                    1, coef.p + lo * kr, Int32(kr), basis, Int32(kr), 1, out + lo * d, Int32(d))
    }

    public func denoise(_ x: UnsafePointer<Float>, sigma: UnsafePointer<Double>, batch: Int,
                        into out: UnsafeMutablePointer<Float>) {
        reserve(batch)
        let n = batch * d
        let xin = x64.p, res = out64.p
        for i in 0..<n { xin[i] = Double(x[i]) }
        denoise64(xin, sigma: sigma, batch: batch, into: res)
        for i in 0..<n { out[i] = Float(res[i]) }
    }

    /// ∇ₓ log p_σ(x) = (D − x)/σ², float64.
    public func score64(_ x: UnsafePointer<Double>, sigma: UnsafePointer<Double>, batch: Int,
                        into out: UnsafeMutablePointer<Double>) {
        denoise64(x, sigma: sigma, batch: batch, into: out)
        for b in 0..<batch {
            let s2 = sigma[b] * sigma[b]
            for i in b * d..<(b + 1) * d { out[i] = (out[i] - x[i]) / s2 }
        }
    }

    /// log p_σ(x) of one sample (normalised), float64.
    public func logDensity(_ x: UnsafePointer<Double>, sigma: Double) -> Double {
        reserve(1)
        project(x, 0, 1)
        let ll = DoubleBuffer(k)
        componentLogLikelihoods(sample: 0, sigma: sigma, into: ll.p)
        var mx = -Double.infinity
        for c in 0..<k { mx = max(mx, ll.p[c]) }
        var z = 0.0
        for c in 0..<k { z += dexp(ll.p[c] - mx) }
        return mx + dlog(z) - 0.5 * Double(d) * dlog(2 * Double.pi)
    }

    /// log p_{σ_l}(x_b) (up to a constant shared by all levels) for every level l, into out ([batch, L]).
    public func levelLogLikelihoods(_ x: UnsafePointer<Float>, batch: Int, into out: UnsafeMutablePointer<Double>) {
        prepareLevels(x, batch: batch)
        let lc = levels.count
        let ll = DoubleBuffer(lc * k), rowMax = DoubleBuffer(lc)
        for b in 0..<batch {
            componentLevelLikelihoods(sample: b, into: ll.p, rowMax: rowMax.p)
            for l in 0..<lc { out[b * lc + l] = logSumExp(ll.p, level: l, max: rowMax.p[l]) }
        }
    }

    /// The σ-step estimator: argmax over levels of the exact log p_σ(x) (uniform prior over levels).
    /// Exact and cheap: log p = logsumexp_k ℓ_k lies in [max_k ℓ_k, max_k ℓ_k + log K], so only levels whose
    /// max_k ℓ_k is within log K of the best such value can hold the argmax; logsumexp is evaluated only there.
    /// Samples are split over the available cores.
    public func mostLikelyLevel(_ x: UnsafePointer<Float>, batch: Int, into out: UnsafeMutablePointer<Int>) {
        prepareLevels(x, batch: batch)
        let lc = levels.count, logK = dlog(Double(k))
        let workers = batch >= 16 ? 2 : 1
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let ll = DoubleBuffer(lc * k), rowMax = DoubleBuffer(lc)
            for b in stride(from: w, to: batch, by: workers) {
                componentLevelLikelihoods(sample: b, into: ll.p, rowMax: rowMax.p)
                var top = -Double.infinity
                for l in 0..<lc { top = max(top, rowMax.p[l]) }
                var best = 0, bv = -Double.infinity
                for l in 0..<lc where rowMax.p[l] >= top - logK {
                    let v = logSumExp(ll.p, level: l, max: rowMax.p[l])
                    if v > bv { bv = v; best = l }
                }
                out[b] = best
            }
        }
    }

    /// Float64 copy of x and its projections, for the level computations.
    private func prepareLevels(_ x: UnsafePointer<Float>, batch: Int) {
        reserve(batch)
        for i in 0..<(batch * d) { x64.p[i] = Double(x[i]) }
        parallelRanges(batch) { lo, hi in project(x64.p, lo, hi) }
    }

    /// ℓ_{k,l} = log π_k + log N_k(x_b; σ_l) (no 2π constant) into ll ([K, L]) and max_k ℓ_{k,l} into rowMax.
    private func componentLevelLikelihoods(sample b: Int, into ll: UnsafeMutablePointer<Double>,
                                           rowMax: UnsafeMutablePointer<Double>) {
        let pb = proj.p + b * kr, lc = levels.count
        for l in 0..<lc { rowMax[l] = -Double.infinity }
        levelInverse.withUnsafeBufferPointer { inv in
            levelLogDet.withUnsafeBufferPointer { ld in
                levelComplementInverse.withUnsafeBufferPointer { cinv in
                    for c in 0..<k {
                        var cc = 0.0
                        for i in 0..<r { cc += pb[c * r + i] * pb[c * r + i] }
                        let resid = sq.p[b * k + c] - cc, lw = logWeights[c]
                        let row = ll + c * lc, ldc = ld.baseAddress! + c * lc
                        for l in 0..<lc { row[l] = resid * cinv[l] + ldc[l] }
                        for i in 0..<r {
                            let c2 = pb[c * r + i] * pb[c * r + i], iv = inv.baseAddress! + (c * r + i) * lc
                            for l in 0..<lc { row[l] += c2 * iv[l] }
                        }
                        for l in 0..<lc {
                            let v = lw - 0.5 * row[l]
                            row[l] = v
                            rowMax[l] = max(rowMax[l], v)
                        }
                    }
                }
            }
        }
    }

    /// logsumexp_k ℓ_{k,l} for one level (ll is [K, L]).
    @inline(__always)
    private func logSumExp(_ ll: UnsafePointer<Double>, level l: Int, max mx: Double) -> Double {
        let lc = levels.count
        var z = 0.0
        for c in 0..<k {
            let t = ll[c * lc + l] - mx
            if t > -40 { z += dexp(t) }                                 // exp(−40)·K is below half an ulp of 1
        }
        return mx + dlog(z)
    }

    /// `count` exact draws from the data distribution, [count, d] Float32.
    public func sample(count: Int, seed: UInt64) -> [Float] {
        var g = Xoshiro256(seed: seed)
        var out = [Float](repeating: 0, count: count * d)
        let delta = delta2.squareRoot()
        var cdf = [Double](), acc = 0.0
        for w in parameters.weights { acc += w; cdf.append(acc) }
        var zr = [Double](repeating: 0, count: r)
        for n in 0..<count {
            let u = Double(g.next() >> 11) * 0x1p-53 * acc
            let c = cdf.firstIndex { u < $0 } ?? (k - 1)
            for i in 0..<r { zr[i] = g.normal() * parameters.eigenvalues[c * r + i].squareRoot() }
            let u0 = parameters.bases[c]
            for row in 0..<d {
                var v = parameters.means[c * d + row] + delta * g.normal()
                for i in 0..<r { v += u0[row * r + i] * zr[i] }
                out[n * d + row] = Float(v)
            }
        }
        return out
    }

    /// Mean of the data distribution (σ = 0), [d].
    public func dataMean() -> [Double] {
        var m = [Double](repeating: 0, count: d)
        for c in 0..<k { for i in 0..<d { m[i] += parameters.weights[c] * parameters.means[c * d + i] } }
        return m
    }

    /// Covariance of the data distribution (σ = 0), [d, d] row-major:
    /// Σ_k π_k (U_k Λ_k U_kᵀ + δ²I + μ_k μ_kᵀ) − μμᵀ.
    public func dataCovariance() -> [Double] {
        var cov = [Double](repeating: 0, count: d * d)
        let mean = dataMean()
        // Scaled factors: F = [√π_k U_k √Λ_k | √π_k μ_k] (d × (K·r + K)), cov = F Fᵀ + δ²I − μμᵀ.
        let cols = kr + k
        var f = [Double](repeating: 0, count: d * cols)
        for c in 0..<k {
            let sw = parameters.weights[c].squareRoot()
            for row in 0..<d {
                for i in 0..<r {
                    f[row * cols + c * r + i] = sw * parameters.bases[c][row * r + i] * parameters.eigenvalues[c * r + i].squareRoot()
                }
                f[row * cols + kr + c] = sw * parameters.means[c * d + row]
            }
        }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, Int32(d), Int32(cols), 1, f, Int32(cols), 0, &cov, Int32(d))
        for i in 0..<d {
            for j in i..<d {
                let v = cov[i * d + j] - mean[i] * mean[j] + (i == j ? delta2 : 0)
                cov[i * d + j] = v
                cov[j * d + i] = v
            }
        }
        return cov
    }
}
