import Testing
@testable import LinearAlgebra

@Suite struct ProductTests {
    static let shapes: [(Int, Int, Int)] = [(1, 1, 1), (7, 5, 3), (100, 3, 4), (3, 100, 5), (33, 17, 65), (2, 2, 0)]

    @Test(arguments: shapes, [Transpose.none, .transposed])
    func sgemmMatchesNaiveProduct(shape: (Int, Int, Int), transposeA: Transpose) throws {
        let (m, n, k) = shape
        for transposeB in [Transpose.none, .transposed] {
            let a = randomMatrix(transposeA == .none ? m : k, transposeA == .none ? k : m, seed: 1)
            let b = randomMatrix(transposeB == .none ? k : n, transposeB == .none ? n : k, seed: 2)
            let c = try matmul(a, b, transposeA: transposeA, transposeB: transposeB)
            #expect(c.shape == [m, n])
            let reference = naiveProduct(a, b, transposeA: transposeA == .transposed, transposeB: transposeB == .transposed)
            #expect(relativeMaxError(c.scalars, reference) < 1e-5)
        }
    }

    @Test func mismatchedInnerDimensionsNameBothShapes() {
        #expect(throws: LinearAlgebraError.shapeMismatch(operation: "matmul", lhs: [3, 4], rhs: [5, 2])) {
            try matmul(Tensor(shape: [3, 4]), Tensor(shape: [5, 2]))
        }
        let message = "\(LinearAlgebraError.shapeMismatch(operation: "matmul", lhs: [3, 4], rhs: [5, 2]))"
        #expect(message.contains("[3, 4]") && message.contains("[5, 2]"))
    }

    @Test(arguments: [1, 2, 3, 4, 5, 8, 13])
    func tallSkinnyProductsMatchNaive(rank r: Int) {
        for (n, m) in [(1, 1), (37, 53), (64, 300), (5, 1)] {
            let mat = randomMatrix(n, m, seed: 3)
            let q = randomMatrix(m, r, seed: 4), p = randomMatrix(n, r, seed: 5)
            for threads in [1, 2] {
                var outP = Tensor(shape: [n, r]), outQ = Tensor(shape: [m, r])
                mat.withUnsafeBufferPointer { pm in q.withUnsafeBufferPointer { pq in outP.withUnsafeMutableBufferPointer { po in
                    TallSkinny.multiply(pm.baseAddress!, rows: n, columns: m, by: pq.baseAddress!, rank: r,
                                        into: po.baseAddress!, threads: threads) } } }
                mat.withUnsafeBufferPointer { pm in p.withUnsafeBufferPointer { pp in outQ.withUnsafeMutableBufferPointer { po in
                    TallSkinny.multiplyTransposed(pm.baseAddress!, rows: n, columns: m, by: pp.baseAddress!, rank: r,
                                                  into: po.baseAddress!, threads: threads) } } }
                #expect(relativeMaxError(outP.scalars, naiveProduct(mat, q)) < 1e-5)
                #expect(relativeMaxError(outQ.scalars, naiveProduct(mat, p, transposeA: true)) < 1e-5)
            }
        }
    }

    /// Threads split Mᵀ·P by columns, never the sum over rows: the result is bit-identical.
    @Test func transposedProductIsIdenticalForAnyThreadCount() {
        let mat = randomMatrix(300, 517, seed: 6), p = randomMatrix(300, 3, seed: 7)
        var one = Tensor(shape: [517, 3]), two = one
        for (threads, out) in [(1, 0), (2, 1)] {
            var o = Tensor(shape: [517, 3])
            mat.withUnsafeBufferPointer { pm in p.withUnsafeBufferPointer { pp in o.withUnsafeMutableBufferPointer { po in
                TallSkinny.multiplyTransposed(pm.baseAddress!, rows: 300, columns: 517, by: pp.baseAddress!, rank: 3,
                                              into: po.baseAddress!, threads: threads) } } }
            if out == 0 { one = o } else { two = o }
        }
        #expect(one == two)
    }
}
