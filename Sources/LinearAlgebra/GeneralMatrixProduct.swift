import COpenBLAS

/// Whether an operand enters a product as stored or transposed.
public enum Transpose: Sendable {
    case none, transposed

    @usableFromInline var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
}

/// `C ← α·op(A)·op(B) + β·C` in row-major storage, through OpenBLAS's `cblas_sgemm`.
///
/// `op(A)` is `m×k`, `op(B)` is `k×n`, `C` is `m×n`; `lda`, `ldb`, `ldc` are the
/// row strides of the matrices as stored (before the transpose). This is the
/// unchecked pointer-level entry the hot paths use; `matmul` is the checked one.
@inlinable
public func sgemm(_ transposeA: Transpose, _ transposeB: Transpose,
                  m: Int, n: Int, k: Int, alpha: Float = 1,
                  a: UnsafePointer<Float>, lda: Int,
                  b: UnsafePointer<Float>, ldb: Int,
                  beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        // BLAS leaves C untouched only when β = 1; scale explicitly so the result is β·C.
        for i in 0..<m { for j in 0..<n { c[i &* ldc &+ j] = beta == 0 ? 0 : beta * c[i &* ldc &+ j] } }
        return
    }
    cblas_sgemm(CblasRowMajor, transposeA.cblas, transposeB.cblas,
                Int32(m), Int32(n), Int32(k), alpha,
                a, Int32(max(1, lda)), b, Int32(max(1, ldb)), beta, c, Int32(max(1, ldc)))
}

/// The matrix product `op(a)·op(b)` of two tensors seen as matrices (ALGORITHMS.md §1.1 view).
///
/// - Throws: `LinearAlgebraError.shapeMismatch` naming both shapes when the
///   inner dimensions differ.
public func matmul(_ a: Tensor, _ b: Tensor,
                   transposeA: Transpose = .none, transposeB: Transpose = .none) throws -> Tensor {
    let (ar, ac) = a.matrixShape
    let (br, bc) = b.matrixShape
    let (m, k) = transposeA == .none ? (ar, ac) : (ac, ar)
    let (k2, n) = transposeB == .none ? (br, bc) : (bc, br)
    guard k == k2 else {
        throw LinearAlgebraError.shapeMismatch(operation: "matmul", lhs: a.shape, rhs: b.shape)
    }
    var c = Tensor(shape: [m, n])
    a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            c.withUnsafeMutableBufferPointer { pc in
                sgemm(transposeA, transposeB, m: m, n: n, k: k,
                      a: pa.baseAddress!, lda: ac, b: pb.baseAddress!, ldb: bc,
                      c: pc.baseAddress!, ldc: n)
            }
        }
    }
    return c
}

/// The number of threads OpenBLAS uses for each call.
///
/// Set it to 1 when workers already run as threads or MPI ranks on every core
/// (see README, "Threads"). Lowering works at run time; raising above the value
/// of `OPENBLAS_NUM_THREADS` at process start does not add threads.
public enum BLASThreads {
    public static var count: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }
}
