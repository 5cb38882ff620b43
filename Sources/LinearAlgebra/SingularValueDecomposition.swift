import CLAPACKE

/// The thin singular value decomposition A = U·diag(S)·Vᵀ of an `n×m` matrix,
/// k = min(n, m): U is `n×k`, S has k values in descending order, Vᵀ is `k×m`.
///
/// Computed by LAPACK's divide-and-conquer `sgesdd` (fast for the full
/// spectrum ATOMO and the exact-SVD baseline need). Singular vectors are unique
/// only up to sign (and rotation within repeated values); callers compare
/// reconstructions, not vectors.
public struct SingularValueDecomposition: Sendable {
    public var u: Tensor
    public var singularValues: [Float]
    public var vt: Tensor

    /// Decomposes `matrix` seen as a matrix (rows = first dimension).
    /// - Throws: `LinearAlgebraError.lapackFailure` if LAPACK does not converge,
    ///   `.invalidArgument` for non-finite input (LAPACK's result would be undefined).
    public init(_ matrix: Tensor) throws {
        let (n, m) = matrix.matrixShape
        let k = min(n, m)
        u = Tensor(shape: [n, k])
        vt = Tensor(shape: [k, m])
        singularValues = [Float](repeating: 0, count: k)
        guard k > 0 else { return }
        guard matrix.scalars.allSatisfy({ $0.isFinite }) else {
            throw LinearAlgebraError.invalidArgument("SVD of a \(n)×\(m) matrix with NaN or Inf entries")
        }
        var a = matrix.scalars  // sgesdd overwrites its input
        let info = a.withUnsafeMutableBufferPointer { pa in
            u.withUnsafeMutableBufferPointer { pu in
                vt.withUnsafeMutableBufferPointer { pvt in
                    singularValues.withUnsafeMutableBufferPointer { ps in
                        LAPACKE_sgesdd(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "S")), Int32(n), Int32(m),
                                       pa.baseAddress, Int32(m), ps.baseAddress,
                                       pu.baseAddress, Int32(k), pvt.baseAddress, Int32(m))
                    }
                }
            }
        }
        guard info == 0 else { throw LinearAlgebraError.lapackFailure(routine: "sgesdd", info: info) }
    }

    /// U_r·diag(S_r)·V_rᵀ, the best rank-r approximation (Eckart–Young), as an `n×m` tensor.
    public func reconstruction(rank r: Int) -> Tensor {
        let n = u.shape[0], k = singularValues.count, m = vt.shape[1]
        let rr = min(max(r, 0), k)
        var us = Tensor(shape: [n, rr])
        for i in 0..<n { for j in 0..<rr { us.scalars[i * rr + j] = u.scalars[i * k + j] * singularValues[j] } }
        var out = Tensor(shape: [n, m])
        guard rr > 0, n > 0, m > 0 else { return out }
        us.withUnsafeBufferPointer { pus in
            vt.withUnsafeBufferPointer { pvt in
                out.withUnsafeMutableBufferPointer { po in
                    sgemm(.none, .none, m: n, n: m, k: rr, a: pus.baseAddress!, lda: rr,
                          b: pvt.baseAddress!, ldb: m, c: po.baseAddress!, ldc: m)
                }
            }
        }
        return out
    }
}
