import Testing
@testable import LinearAlgebra

@Suite struct FactorizationTests {
    @Test(arguments: [(30, 20), (20, 30), (1, 7), (7, 1), (64, 64)])
    func svdReconstructsWithOrthonormalFactors(shape: (Int, Int)) throws {
        let a = randomMatrix(shape.0, shape.1, seed: 10)
        let svd = try SingularValueDecomposition(a)
        let k = min(shape.0, shape.1)
        #expect(svd.u.shape == [shape.0, k] && svd.vt.shape == [k, shape.1])
        let rebuilt = svd.reconstruction(rank: k)
        #expect(frobeniusDistance(rebuilt, a) / frobenius(a) < 1e-4)
        #expect(orthonormalityError(svd.u) < 1e-4)
        #expect(orthonormalityError(try svd.vt.transposedMatrix()) < 1e-4)
        #expect(svd.singularValues.allSatisfy { $0 >= 0 })
        #expect(zip(svd.singularValues, svd.singularValues.dropFirst()).allSatisfy { $0 >= $1 })
    }

    /// A rank-3 matrix: values beyond the third vanish (relative to the first) and the rank-3
    /// truncation reproduces it; the zero matrix gives zero values and finite factors.
    @Test func svdOfRankDeficientAndZeroMatrices() throws {
        let a = try matmul(randomMatrix(20, 3, seed: 11), randomMatrix(3, 15, seed: 12))
        let svd = try SingularValueDecomposition(a)
        #expect(svd.singularValues[3...].allSatisfy { $0 < 1e-5 * svd.singularValues[0] })
        #expect(frobeniusDistance(svd.reconstruction(rank: 3), a) / frobenius(a) < 1e-5)
        let zero = try SingularValueDecomposition(Tensor(shape: [6, 4]))
        #expect(zero.singularValues.allSatisfy { $0 == 0 })
        #expect(zero.u.scalars.allSatisfy { $0.isFinite } && zero.vt.scalars.allSatisfy { $0.isFinite })
        #expect(zero.reconstruction(rank: 2).scalars.allSatisfy { $0 == 0 })
    }

    @Test func svdRefusesNonFiniteInput() {
        var a = randomMatrix(4, 4, seed: 1)
        a.scalars[5] = .nan
        #expect(throws: LinearAlgebraError.self) { try SingularValueDecomposition(a) }
    }

    @Test(arguments: [Orthonormalization.gramSchmidt, .householder])
    func orthonormalizationGivesOrthonormalColumns(method: Orthonormalization) throws {
        for (n, r) in [(50, 1), (50, 4), (200, 16), (9, 9)] {
            var a = randomMatrix(n, r, seed: 20)
            let original = a
            try method.apply(&a)
            #expect(orthonormalityError(a) < 1e-5)
            // The span is kept: the first column is the normalized first input column (up to sign).
            let norm = (0..<n).reduce(Float(0)) { $0 + original.scalars[$1 * r] * original.scalars[$1 * r] }.squareRoot()
            let cosine = (0..<n).reduce(Float(0)) { $0 + a.scalars[$1 * r] * original.scalars[$1 * r] } / norm
            #expect(abs(abs(cosine) - 1) < 1e-5)
        }
    }

    /// Documented rule: zero and dependent columns become zero columns; nothing is NaN or Inf.
    @Test(arguments: [Orthonormalization.gramSchmidt, .householder])
    func zeroAndDuplicateColumnsBecomeZero(method: Orthonormalization) throws {
        let n = 40, r = 4
        var a = randomMatrix(n, r, seed: 21)
        for i in 0..<n { a.scalars[i * r + 1] = 0; a.scalars[i * r + 3] = a.scalars[i * r + 0] * 2 }
        try method.apply(&a)
        #expect(a.scalars.allSatisfy { $0.isFinite })
        for i in 0..<n { #expect(a.scalars[i * r + 1] == 0 && a.scalars[i * r + 3] == 0) }
        #expect(orthonormalityError(a, skipping: [1, 3]) < 1e-5)

        var zero = Tensor(shape: [10, 3])
        try method.apply(&zero)
        #expect(zero.scalars.allSatisfy { $0 == 0 })

        var nan = randomMatrix(10, 2, seed: 1)
        nan.scalars[0] = .nan
        try method.apply(&nan)
        #expect(nan.scalars.allSatisfy { $0.isFinite })
    }

    @Test func moreColumnsThanRowsZeroesTheSurplus() throws {
        for method in [Orthonormalization.gramSchmidt, .householder] {
            var a = randomMatrix(3, 5, seed: 22)
            try method.apply(&a)
            #expect(orthonormalityError(a, skipping: [3, 4]) < 1e-5)
            for i in 0..<3 { #expect(a.scalars[i * 5 + 3] == 0 && a.scalars[i * 5 + 4] == 0) }
        }
    }
}

func frobenius(_ a: Tensor) -> Double { a.scalars.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
func frobeniusDistance(_ a: Tensor, _ b: Tensor) -> Double {
    zip(a.scalars, b.scalars).reduce(0.0) { $0 + (Double($1.0) - Double($1.1)) * (Double($1.0) - Double($1.1)) }.squareRoot()
}

extension Tensor {
    func transposedMatrix() throws -> Tensor {
        let (r, c) = matrixShape
        var t = Tensor(shape: [c, r])
        for i in 0..<r { for j in 0..<c { t.scalars[j * r + i] = scalars[i * c + j] } }
        return t
    }
}
