import Collectives
import LinearAlgebra
@testable import GradientCompression
import TestSupport

/// Shared fixtures of the PowerSGD-family tests.
enum LowRankFixtures {
    /// Worker `rank`'s gradient at `step`: standard normal, a pure function of its arguments.
    static func gradients(_ shapes: [[Int]], rank: Int, step: Int, seed: UInt64 = 7) -> [Tensor] {
        shapes.enumerated().map { index, shape in
            Philox(seed: seed, stream: Philox.stream(UInt64(rank), UInt64(step), UInt64(index))).normalTensor(shape: shape)
        }
    }

    /// The element-wise mean of the workers' gradient lists.
    static func mean(_ lists: [[Tensor]]) -> [Tensor] {
        var result = lists[0]
        for index in result.indices {
            for i in result[index].scalars.indices {
                var s: Float = 0
                for list in lists { s += list[index].scalars[i] }
                result[index].scalars[i] = s / Float(lists.count)
            }
        }
        return result
    }

    /// A `rows×columns` matrix U·diag(σ)·Vᵀ with orthonormal U, V from QR of normal matrices.
    static func matrix(rows: Int, columns: Int, singularValues: [Float], seed: UInt64) throws -> Tensor {
        let k = singularValues.count
        var u = Philox(seed: seed, stream: 1).normalTensor(shape: [rows, k])
        var v = Philox(seed: seed, stream: 2).normalTensor(shape: [columns, k])
        try Orthonormalization.householder.apply(&u)
        try Orthonormalization.householder.apply(&v)
        for i in 0..<rows { for j in 0..<k { u.scalars[i * k + j] *= singularValues[j] } }
        return try matmul(u, v, transposeB: .transposed)
    }

    /// ‖M − best rank-r approximation‖ = sqrt(Σ_{i>r} σᵢ²) (Eckart–Young).
    static func optimalError(_ m: Tensor, rank r: Int) throws -> Double {
        let s = try SingularValueDecomposition(m).singularValues
        return s.dropFirst(r).reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    }

    /// The top-r left singular vectors of `output` (an orthonormal basis of its column space when
    /// its rank is r), n×r row-major in Double.
    static func columnBasis(of output: Tensor, rank r: Int) throws -> [Double] {
        let svd = try SingularValueDecomposition(output)
        let (n, k) = (svd.u.shape[0], svd.u.shape[1])
        return (0 ..< n * r).map { Double(svd.u.scalars[($0 / r) * k + $0 % r]) }
    }

    /// UUᵀ·M for an n×r basis U (Double), M an n×m matrix.
    static func project(_ m: Tensor, onto u: [Double], rank r: Int) -> [Double] {
        let (n, cols) = (m.shape[0], m.count / m.shape[0])
        var utm = [Double](repeating: 0, count: r * cols)
        for i in 0..<n { for k in 0..<r { for j in 0..<cols { utm[k * cols + j] += u[i * r + k] * Double(m.scalars[i * cols + j]) } } }
        var result = [Double](repeating: 0, count: n * cols)
        for i in 0..<n { for k in 0..<r { for j in 0..<cols { result[i * cols + j] += u[i * r + k] * utm[k * cols + j] } } }
        return result
    }

    /// Uᵀ·e for an n×r basis U, e an n×m matrix given as its scalars.
    static func transposedProduct(_ u: [Double], rank r: Int, _ e: [Float], columns: Int) -> [Double] {
        var result = [Double](repeating: 0, count: r * columns)
        for i in 0 ..< e.count / columns { for k in 0..<r { for j in 0..<columns { result[k * columns + j] += u[i * r + k] * Double(e[i * columns + j]) } } }
        return result
    }

    static func norm(_ x: [Double]) -> Double { x.reduce(0) { $0 + $1 * $1 }.squareRoot() }

    static func norm(_ t: Tensor) -> Double { t.scalars.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
}
