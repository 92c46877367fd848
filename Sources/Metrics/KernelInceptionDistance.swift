import CBLAS
import Tensor

// Kernel Inception Distance (Bińkowski et al. 2018) as torch-fidelity and clean-fid compute it: the unbiased MMD²
// with the cubic polynomial kernel k(x, y) = (xᵀy/d + 1)³ over random subsets of m features drawn without
// replacement from each set, averaged over the subsets:
//   MMD²_u = [Σ_{i≠j} k(xᵢ,xⱼ) + Σ_{i≠j} k(yᵢ,yⱼ)] / (m(m − 1)) − 2 Σ_{i,j} k(xᵢ,yⱼ) / m².
// Defaults are theirs: 100 subsets of 1000. torch-fidelity refuses sets smaller than the subset size; clean-fid uses
// min(n₁, n₂, 1000) — done here too, and recorded in the estimate. The spread reported is numpy's `np.std` (ddof 0)
// of the per-subset values, torch-fidelity's `kernel_inception_distance_std`. The subsets come from SplitMix64 (not
// numpy's generator), so a value matches theirs to within the subset sampling spread, not digit for digit.
//
// Gram matrices are Float32 GEMMs on the Float32 features (as both references); the kernel and all sums are Float64.

public enum KernelInceptionDistance {
    public struct Estimate: Sendable, Equatable {
        public var mean: Double
        public var std: Double
        public var subsets: Int
        public var subsetSize: Int
    }

    public static let defaultSubsets = 100
    public static let defaultSubsetSize = 1000

    /// Unbiased MMD² of two sets of `m` features each ([m, d] row-major).
    public static func mmd2(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count m: Int, dimension d: Int) -> Double {
        precondition(m >= 2, "KID: need at least 2 samples per subset, got \(m)")
        var gram = [Float](repeating: 0, count: m * m)
        let gamma = 1 / Double(d)
        @inline(__always) func k(_ g: Float) -> Double { let t = Double(g) * gamma + 1; return t * t * t }
        func offDiagonalSum(_ a: UnsafePointer<Float>) -> Double {
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, Int32(m), Int32(d), 1, a, Int32(d), 0, &gram, Int32(m))
            var s = 0.0
            for i in 0..<m { for j in (i + 1)..<max(i + 1, m) { s += k(gram[i * m + j]) } }
            return 2 * s
        }
        let xx = offDiagonalSum(x), yy = offDiagonalSum(y)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(m), Int32(d), 1, x, Int32(d), y, Int32(d), 0, &gram, Int32(m))
        var xy = 0.0
        for v in gram { xy += k(v) }
        let md = Double(m)
        return (xx + yy) / (md * (md - 1)) - 2 * xy / (md * md)
    }

    /// KID over explicit subsets: `subsets[s]` = (rows of `x`, rows of `y`), each of the same size.
    public static func estimate(_ x: [Float], _ y: [Float], dimension d: Int, subsets: [([Int], [Int])]) -> Estimate {
        precondition(!subsets.isEmpty, "KID: no subsets")
        let m = subsets[0].0.count
        var a = [Float](repeating: 0, count: m * d), b = a
        var values = [Double]()
        for (ix, iy) in subsets {
            precondition(ix.count == m && iy.count == m, "KID: subsets of different sizes")
            for (r, i) in ix.enumerated() { for c in 0..<d { a[r * d + c] = x[i * d + c] } }
            for (r, i) in iy.enumerated() { for c in 0..<d { b[r * d + c] = y[i * d + c] } }
            values.append(mmd2(a, b, count: m, dimension: d))
        }
        let mean = values.reduce(0, +) / Double(values.count)
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
        return Estimate(mean: mean, std: variance.squareRoot(), subsets: values.count, subsetSize: m)
    }

    /// KID with `subsets` random subsets of min(subsetSize, n_x, n_y) rows of each set, seeded.
    public static func estimate(_ x: [Float], _ y: [Float], dimension d: Int, subsets: Int = defaultSubsets,
                                subsetSize: Int = defaultSubsetSize, seed: UInt64 = 0) -> Estimate {
        let nx = x.count / d, ny = y.count / d
        let m = min(subsetSize, nx, ny)
        var rng = SplitMix64(seed: seed ^ 0x4B49_4400)
        func draw(_ n: Int) -> [Int] {
            // Partial Fisher–Yates: the first m entries of a uniform random permutation of 0..<n.
            var p = Array(0..<n)
            for i in 0..<m { p.swapAt(i, i + Int(rng.next() % UInt64(n - i))) }
            return Array(p.prefix(m))
        }
        let chosen = (0..<subsets).map { _ in (draw(nx), draw(ny)) }
        return estimate(x, y, dimension: d, subsets: chosen)
    }
}
