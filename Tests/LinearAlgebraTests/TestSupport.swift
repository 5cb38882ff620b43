@testable import LinearAlgebra

/// A deterministic random matrix for tests.
func randomMatrix(_ rows: Int, _ columns: Int, seed: UInt64) -> Tensor {
    Philox(seed: seed, stream: 0).normalTensor(shape: [rows, columns])
}

/// The naive triple loop, in Double: the oracle for every product kernel.
func naiveProduct(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> [Double] {
    let (ar, ac) = a.matrixShape, (br, bc) = b.matrixShape
    let m = transposeA ? ac : ar, k = transposeA ? ar : ac, n = transposeB ? br : bc
    var c = [Double](repeating: 0, count: m * n)
    for i in 0..<m { for j in 0..<n { var s = 0.0
        for l in 0..<k {
            let x = transposeA ? a.scalars[l * ac + i] : a.scalars[i * ac + l]
            let y = transposeB ? b.scalars[j * bc + l] : b.scalars[l * bc + j]
            s += Double(x) * Double(y)
        }
        c[i * n + j] = s } }
    return c
}

/// max |x − y| / max(1, max |y|)
func relativeMaxError(_ x: [Float], _ y: [Double]) -> Double {
    precondition(x.count == y.count)
    var err = 0.0, scale = 1.0
    for i in x.indices { err = max(err, abs(Double(x[i]) - y[i])); scale = max(scale, abs(y[i])) }
    return err / scale
}

/// Frobenius norm of AᵀA − I for the columns of an n×r matrix, skipping `zeroColumns`.
func orthonormalityError(_ a: Tensor, skipping zeroColumns: Set<Int> = []) -> Double {
    let n = a.shape[0], r = a.shape[1]
    var err = 0.0
    for p in 0..<r where !zeroColumns.contains(p) { for q in 0..<r where !zeroColumns.contains(q) {
        var s = 0.0
        for i in 0..<n { s += Double(a.scalars[i * r + p]) * Double(a.scalars[i * r + q]) }
        err += (s - (p == q ? 1 : 0)) * (s - (p == q ? 1 : 0))
    } }
    return err.squareRoot()
}
