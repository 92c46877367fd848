import CBLAS
import Foundation
import Metrics

/// Fréchet distances of many sample sets against one fixed reference, for bootstraps (the FID formula, float64):
///   FD = ‖μₓ − μᵣ‖² + tr Σₓ + tr Σᵣ − 2·tr((R Σₓ R)^{½}),  R = Σᵣ^{½}
/// R is computed once; per set, its moments as GaussianMoments (mean, n − 1 covariance) and the eigenvalues only of
/// R Σₓ R (LAPACK dsyevd, no vectors). tr((Σ₁^{½}Σ₂Σ₁^{½})^{½}) is symmetric in 1 and 2, so this is
/// FrechetDistance.between with the reference first, up to round-off — about a third of its work per set.
struct FixedReferenceFrechet {
    let reference: GaussianMoments
    let root: [Double]
    let referenceTrace: Double
    private var product: [Double], scratch: [Double], eigenvalues: [Double], work: [Double], iwork: [Int32]

    init(reference: GaussianMoments) throws {
        let d = reference.dimension
        self.reference = reference
        root = try symmetricSqrt(reference.covariance, dimension: d)
        referenceTrace = (0..<d).reduce(0) { $0 + reference.covariance[$1 * d + $1] }
        product = [Double](repeating: 0, count: d * d)
        scratch = product
        eigenvalues = [Double](repeating: 0, count: d)
        // Workspace of dsyevd for eigenvalues only.
        var jobz = Int8(UInt8(ascii: "N")), uplo = Int8(UInt8(ascii: "L")), n = Int32(d), lda = Int32(d), info: Int32 = 0
        var lwork: Int32 = -1, liwork: Int32 = -1, wq = [0.0], iq: [Int32] = [0]
        var m = product, w = eigenvalues
        dsyevd_(&jobz, &uplo, &n, &m, &lda, &w, &wq, &lwork, &iq, &liwork, &info)
        guard info == 0 else { throw LinearAlgebraError.lapack(routine: "dsyevd (workspace query)", info: info) }
        work = [Double](repeating: 0, count: max(1, Int(wq[0])))
        iwork = [Int32](repeating: 0, count: max(1, Int(iq[0])))
    }

    /// FD of `x` (`[n, d]` Float32, n ≥ 2) against the reference.
    mutating func distance(_ x: [Float]) throws -> Double {
        let d = reference.dimension
        let m = GaussianMoments(samples: x, dimension: d)
        var meanTerm = 0.0, trace = 0.0
        for i in 0..<d {
            let t = m.mean[i] - reference.mean[i]
            meanTerm += t * t
            trace += m.covariance[i * d + i]
        }
        cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, Int32(d), Int32(d), 1, root, Int32(d), m.covariance, Int32(d), 0, &scratch, Int32(d))
        cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, Int32(d), Int32(d), 1, root, Int32(d), scratch, Int32(d), 0, &product, Int32(d))
        for i in 0..<d { for j in (i + 1)..<max(i + 1, d) { let s = 0.5 * (product[i * d + j] + product[j * d + i]); product[i * d + j] = s; product[j * d + i] = s } }
        var jobz = Int8(UInt8(ascii: "N")), uplo = Int8(UInt8(ascii: "L")), n = Int32(d), lda = Int32(d), info: Int32 = 0
        var lwork = Int32(work.count), liwork = Int32(iwork.count)
        dsyevd_(&jobz, &uplo, &n, &product, &lda, &eigenvalues, &work, &lwork, &iwork, &liwork, &info)
        guard info == 0 else { throw LinearAlgebraError.lapack(routine: "dsyevd", info: info) }
        let rootTrace = eigenvalues.reduce(0) { $0 + max($1, 0).squareRoot() }
        return meanTerm + trace + referenceTrace - 2 * rootTrace
    }
}
