import CLAPACKE

/// Orthonormalization of the columns of an `n×r` row-major matrix, in place.
///
/// PowerSGD needs P̂ = orth(P) after every all-reduce (ALGORITHMS.md §1.3, step 3).
/// Two methods:
/// - `.gramSchmidt`: modified Gram–Schmidt, column by column. Cheap and
///   accurate enough for the small ranks PowerSGD uses (the PyTorch hook uses
///   it for r ≤ 2); the default below `householderThreshold`.
/// - `.householder`: QR by Householder reflections through LAPACK (`sgeqrf` +
///   `sorgqr`), backward stable for any r.
///
/// **Zero and dependent columns** (a frozen layer's zero gradient, a rank-
/// deficient P): a column whose norm after removing its projections onto the
/// earlier columns is at most `dependenceTolerance` (10⁻⁶) times its norm
/// before, or exactly zero, is set to **zero** instead of being normalized.
/// The result is then orthonormal on its nonzero columns and exactly zero on
/// the others — never NaN or Inf — and P̂P̂ᵀ is still an orthogonal projection,
/// onto a smaller subspace, so PowerSGD's Δ' = P̂ P̂ᵀ M stays a valid (lower-
/// rank) approximation. The Householder path applies the same rule to the
/// diagonal of R. Non-finite input gives zero columns too (a NaN column is
/// "not a direction"); callers that must report NaN check their input.
public enum Orthonormalization: Sendable {
    case gramSchmidt
    case householder

    /// Relative size below which a column counts as dependent on the earlier ones.
    public static let dependenceTolerance: Float = 1e-6
    /// Ranks above this use Householder QR by default.
    public static let householderThreshold = 8

    /// The method used by default for rank `r`.
    public static func preferred(rank r: Int) -> Orthonormalization {
        r > householderThreshold ? .householder : .gramSchmidt
    }

    /// Orthonormalizes the columns of the row-major `rows×columns` matrix at `matrix`.
    /// `epsilon` is added to each norm before dividing (PyTorch's `orthogonalization_epsilon`,
    /// default 0); it matters only for callers that want the hook's exact numbers.
    public func apply(_ matrix: UnsafeMutablePointer<Float>, rows n: Int, columns r: Int,
                      epsilon: Float = 0) throws {
        guard n > 0, r > 0 else { return }
        switch self {
        case .gramSchmidt: Orthonormalization.gramSchmidt(matrix, rows: n, columns: r, epsilon: epsilon)
        case .householder: try Orthonormalization.householder(matrix, rows: n, columns: r)
        }
    }

    /// Tensor form: `matrix` must be 2-D (`[n, r]`).
    public func apply(_ matrix: inout Tensor, epsilon: Float = 0) throws {
        guard matrix.shape.count == 2 else {
            throw LinearAlgebraError.invalidShape(operation: "orthonormalize", shape: matrix.shape,
                                                  reason: "expected a 2-D matrix")
        }
        let (n, r) = (matrix.shape[0], matrix.shape[1])
        try matrix.withUnsafeMutableBufferPointer { try apply($0.baseAddress!, rows: n, columns: r, epsilon: epsilon) }
    }

    static func gramSchmidt(_ a: UnsafeMutablePointer<Float>, rows n: Int, columns r: Int, epsilon: Float) {
        for j in 0..<r {
            var original: Float = 0
            for i in 0..<n { let v = a[i &* r &+ j]; original += v * v }
            // Modified Gram–Schmidt: subtract the projection on each earlier (already normalized)
            // column from the current, updated vector — more stable than classical GS.
            for k in 0..<j {
                var projection: Float = 0
                for i in 0..<n { projection += a[i &* r &+ k] * a[i &* r &+ j] }
                if projection != 0 { for i in 0..<n { a[i &* r &+ j] -= projection * a[i &* r &+ k] } }
            }
            var remaining: Float = 0
            for i in 0..<n { let v = a[i &* r &+ j]; remaining += v * v }
            let norm = remaining.squareRoot()
            if !(norm.isFinite && original.isFinite) || norm == 0
                || norm <= dependenceTolerance * original.squareRoot() {
                for i in 0..<n { a[i &* r &+ j] = 0 }
            } else {
                let inverse = 1 / (norm + epsilon)
                for i in 0..<n { a[i &* r &+ j] *= inverse }
            }
        }
    }

    static func householder(_ a: UnsafeMutablePointer<Float>, rows n: Int, columns r: Int) throws {
        // Column norms before, to apply the dependence rule to R's diagonal.
        var norms = [Float](repeating: 0, count: r)
        var finite = true
        for i in 0..<n { for j in 0..<r { let v = a[i &* r &+ j]; norms[j] += v * v; if !v.isFinite { finite = false } } }
        if !finite {
            // LAPACK on NaN/Inf input is undefined; fall back to the Gram–Schmidt rule (zero columns).
            gramSchmidt(a, rows: n, columns: r, epsilon: 0)
            return
        }
        let k = min(n, r)
        var tau = [Float](repeating: 0, count: k)
        var info = LAPACKE_sgeqrf(LAPACK_ROW_MAJOR, Int32(n), Int32(r), a, Int32(r), &tau)
        guard info == 0 else { throw LinearAlgebraError.lapackFailure(routine: "sgeqrf", info: info) }
        var diagonal = [Float](repeating: 0, count: k)
        for j in 0..<k { diagonal[j] = abs(a[j &* r &+ j]) }
        info = LAPACKE_sorgqr(LAPACK_ROW_MAJOR, Int32(n), Int32(k), Int32(k), a, Int32(r), &tau)
        guard info == 0 else { throw LinearAlgebraError.lapackFailure(routine: "sorgqr", info: info) }
        // Columns beyond n (r > n) cannot be orthonormal to the first n: zero them, as for dependent ones.
        for j in 0..<r where j >= k || diagonal[j] == 0
            || diagonal[j] <= dependenceTolerance * norms[j].squareRoot() {
            for i in 0..<n { a[i &* r &+ j] = 0 }
        }
    }
}
