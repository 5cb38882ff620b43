import Testing
@testable import LinearAlgebra

/// The AVX2/FMA and AVX-512 tall-skinny kernels against the scalar references that repeat their
/// order of operations (bit for bit, so the two vector paths also agree with each other), and the
/// portable kernels against the same references to rounding.
@Suite struct TallSkinnyKernelTests {
    /// (rows, columns): column counts below, at and past a block and not multiples of 8 or 16
    /// (M·Q in blocks from r·m > 64 Ki floats: 9000 columns at r ≥ 8), row counts with remainders
    /// after the AVX2 kernels' two- and four-row steps and the AVX-512 kernels' four- and eight-row
    /// steps (19 = 2·8 + 3, 37 = 4·8 + 5 = 9·4 + 1).
    static let shapes: [(Int, Int)] = [(1, 1), (7, 5), (37, 53), (9, 300), (3, 4100), (5, 9000), (2, 17), (19, 77)]
    static let ranks = [1, 2, 3, 4, 5, 8, 13]

    static func products(_ n: Int, _ m: Int, rank r: Int, threads: Int, kernel: KernelPath,
                         seed: UInt64 = 3) -> (p: [Float], q: [Float], reference: (p: [Float], q: [Float])) {
        let mat = randomMatrix(n, m, seed: seed)
        let q = randomMatrix(m, r, seed: seed + 1), p = randomMatrix(n, r, seed: seed + 2)
        var outP = [Float](repeating: .nan, count: n * r), outQ = [Float](repeating: .nan, count: m * r)
        var reference: (p: [Float], q: [Float]) = ([], [])
        mat.withUnsafeBufferPointer { pm in q.withUnsafeBufferPointer { pq in p.withUnsafeBufferPointer { pp in
            outP.withUnsafeMutableBufferPointer { po in
                TallSkinny.multiply(pm.baseAddress!, rows: n, columns: m, by: pq.baseAddress!, rank: r,
                                    into: po.baseAddress!, threads: threads, kernel: kernel) }
            outQ.withUnsafeMutableBufferPointer { oq in
                TallSkinny.multiplyTransposed(pm.baseAddress!, rows: n, columns: m, by: pp.baseAddress!, rank: r,
                                              into: oq.baseAddress!, threads: threads, kernel: kernel) }
            reference = (TallSkinny.referenceMultiply(pm.baseAddress!, rows: n, columns: m, by: pq.baseAddress!, rank: r,
                                                      block: TallSkinny.multiplyBlock(rank: r, columns: m)),
                         TallSkinny.referenceMultiplyTransposed(pm.baseAddress!, rows: n, columns: m, by: pp.baseAddress!, rank: r))
        } } }
        return (outP, outQ, reference)
    }

    static func expectReferenceBits(rank r: Int, kernel: KernelPath) {
        for (n, m) in Self.shapes {
            for threads in [1, 2] {
                let result = Self.products(n, m, rank: r, threads: threads, kernel: kernel)
                #expect(result.p.map(\.bitPattern) == result.reference.p.map(\.bitPattern), "\(kernel) M·Q \(n)×\(m) rank \(r), \(threads) threads")
                #expect(result.q.map(\.bitPattern) == result.reference.q.map(\.bitPattern), "\(kernel) Mᵀ·P \(n)×\(m) rank \(r), \(threads) threads")
            }
        }
    }

    @Test(.enabled(if: KernelPath.preferred.hasAVX2, "the CPU has no AVX2/FMA"), arguments: ranks)
    func avx2KernelsEqualTheirReferenceBitForBit(rank r: Int) {
        Self.expectReferenceBits(rank: r, kernel: .avx2)
    }

    @Test(.enabled(if: KernelPath.preferred == .avx512, "the CPU has no AVX-512F/VL"), arguments: ranks)
    func avx512KernelsEqualTheirReferenceBitForBit(rank r: Int) {
        Self.expectReferenceBits(rank: r, kernel: .avx512)
    }

    /// The portable kernels multiply and add separately (no FMA in Swift's x86-64 baseline), so
    /// they agree with the FMA references to a few roundings of the largest partial sum: 1e-5 of
    /// the largest |result| for these sums of at most 9,000 products of N(0, 1) values.
    @Test(arguments: ranks)
    func portableKernelsAgreeWithTheReferenceToRounding(rank r: Int) {
        for (n, m) in Self.shapes {
            let result = Self.products(n, m, rank: r, threads: 2, kernel: .portable)
            #expect(relativeMaxError(result.p, result.reference.p.map(Double.init)) < 1e-5, "M·Q \(n)×\(m) rank \(r)")
            #expect(relativeMaxError(result.q, result.reference.q.map(Double.init)) < 1e-5, "Mᵀ·P \(n)×\(m) rank \(r)")
        }
    }

    /// The references themselves against the naive Double triple loop (so a wrong reference
    /// cannot make the bit-for-bit test pass).
    @Test(arguments: [1, 4, 5])
    func referencesMatchTheNaiveProduct(rank r: Int) {
        let n = 9, m = 4100
        let mat = randomMatrix(n, m, seed: 3), q = randomMatrix(m, r, seed: 4), p = randomMatrix(n, r, seed: 5)
        mat.withUnsafeBufferPointer { pm in q.withUnsafeBufferPointer { pq in p.withUnsafeBufferPointer { pp in
            let refP = TallSkinny.referenceMultiply(pm.baseAddress!, rows: n, columns: m, by: pq.baseAddress!, rank: r,
                                                    block: TallSkinny.columnBlock(rank: r))
            let refQ = TallSkinny.referenceMultiplyTransposed(pm.baseAddress!, rows: n, columns: m, by: pp.baseAddress!, rank: r)
            #expect(relativeMaxError(refP, naiveProduct(mat, q)) < 1e-5)
            #expect(relativeMaxError(refQ, naiveProduct(mat, p, transposeA: true)) < 1e-5)
        } } }
    }

    @Test func multiplyIsIdenticalForAnyThreadCount() {
        let one = Self.products(301, 517, rank: 3, threads: 1, kernel: .preferred)
        let two = Self.products(301, 517, rank: 3, threads: 2, kernel: .preferred)
        #expect(one.p.map(\.bitPattern) == two.p.map(\.bitPattern))
    }
}
