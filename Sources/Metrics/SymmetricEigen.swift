import CBLAS

// Symmetric eigen-decomposition through LAPACK dsyevd (inside libopenblas). Real arithmetic only.

public enum LinearAlgebraError: Error, CustomStringConvertible {
    case lapack(routine: String, info: Int32)
    public var description: String {
        switch self {
        case .lapack(let routine, let info): return "\(routine) failed with info = \(info)"
        }
    }
}

/// Eigenvalues (ascending) and eigenvectors of a symmetric n×n matrix (row-major; only symmetry is assumed).
/// Returns (values, vectors) with vectors row-major [n, n], column j the eigenvector of values[j].
public func symmetricEigen(_ a: [Double], dimension n: Int) throws -> (values: [Double], vectors: [Double]) {
    precondition(a.count == n * n, "symmetricEigen: matrix has \(a.count) entries, expected \(n)²")
    // Row-major symmetric = column-major symmetric; LAPACK's column j of the result is row-major column j
    // after a transpose, handled below.
    var m = a, w = [Double](repeating: 0, count: n)
    var jobz = Int8(UInt8(ascii: "V")), uplo = Int8(UInt8(ascii: "L"))
    var nn = Int32(n), lda = Int32(max(n, 1)), info: Int32 = 0
    var lwork: Int32 = -1, liwork: Int32 = -1
    var wq = [Double](repeating: 0, count: 1), iq = [Int32](repeating: 0, count: 1)
    dsyevd_(&jobz, &uplo, &nn, &m, &lda, &w, &wq, &lwork, &iq, &liwork, &info)
    guard info == 0 else { throw LinearAlgebraError.lapack(routine: "dsyevd (workspace query)", info: info) }
    lwork = Int32(wq[0]); liwork = iq[0]
    var work = [Double](repeating: 0, count: Int(lwork)), iwork = [Int32](repeating: 0, count: Int(liwork))
    dsyevd_(&jobz, &uplo, &nn, &m, &lda, &w, &work, &lwork, &iwork, &liwork, &info)
    guard info == 0 else { throw LinearAlgebraError.lapack(routine: "dsyevd", info: info) }
    // m is column-major: eigenvector j = m[j*n ..< (j+1)*n]. Transpose into row-major with column j = vector j.
    var v = [Double](repeating: 0, count: n * n)
    for j in 0..<n { for i in 0..<n { v[i * n + j] = m[j * n + i] } }
    return (w, v)
}

/// Principal square root of a symmetric positive semi-definite matrix: V·diag(√max(λ,0))·Vᵀ.
/// Eigenvalues below zero (round-off of a PSD matrix) are clamped to 0; the result is real and symmetric.
public func symmetricSqrt(_ a: [Double], dimension n: Int) throws -> [Double] {
    let (w, v) = try symmetricEigen(a, dimension: n)
    var scaled = v
    for j in 0..<n {
        let s = max(w[j], 0).squareRoot()
        for i in 0..<n { scaled[i * n + j] *= s }
    }
    var out = [Double](repeating: 0, count: n * n)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(n), Int32(n), 1, scaled, Int32(n),
                v, Int32(n), 0, &out, Int32(n))
    return out
}
