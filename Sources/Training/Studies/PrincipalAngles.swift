import Foundation
import LinearAlgebra

/// The principal angles between two r-dimensional subspaces of ℝⁿ, each given by an n×r basis
/// with orthonormal (or zero) columns, row-major: θᵢ = arccos σᵢ(AᵀB), σ the singular values of
/// the r×r product in descending order (Björck and Golub 1973). The largest angle θ_max is the
/// distance between the subspaces: 0 when they are equal, π/2 when some direction of one is
/// orthogonal to the whole of the other. A zero column (PowerSGD's P̂ of a rank-deficient
/// input) spans nothing, so it counts as an orthogonal direction.
public enum PrincipalAngles {
    /// The r angles in radians, ascending.
    public static func angles(_ a: [Float], _ b: [Float], rows n: Int, rank r: Int) throws -> [Double] {
        precondition(a.count == n * r && b.count == n * r, "bases must be n×r")
        guard r > 0 else { return [] }
        var product = [Float](repeating: 0, count: r * r)
        for i in 0..<n {
            for j in 0..<r where a[i * r + j] != 0 {
                for k in 0..<r { product[j * r + k] += a[i * r + j] * b[i * r + k] }
            }
        }
        let cosines = try SingularValueDecomposition(Tensor(shape: [r, r], scalars: product)).singularValues
        let angles: [Double] = cosines.map { cosine in acos(min(1, max(0, Double(cosine)))) }
        return angles + [Double](repeating: .pi / 2, count: r - cosines.count)
    }

    /// θ_max, the largest principal angle in radians.
    public static func largest(_ a: [Float], _ b: [Float], rows n: Int, rank r: Int) throws -> Double {
        try angles(a, b, rows: n, rank: r).max() ?? 0
    }
}
