import Testing
import LinearAlgebra
@testable import GradientCompression
import TestSupport

@Suite struct SparsificationTests {
    @Test(arguments: [TopK.Selection.exact, .sampled])
    func topKReturnsExactlyTheKLargestMagnitudes(selection: TopK.Selection) throws {
        for (n, ratio) in [(1, 0.5), (10, 0.3), (1000, 0.01), (5000, 0.1), (20_000, 0.001), (777, 1.0)] {
            var t = normalTensor([n], seed: UInt64(n))
            if n >= 10 { t.scalars[3] = t.scalars[7] }  // a tie somewhere
            let c = try TopK(ratio: ratio, selection: selection, sampleRatio: 0.05, seed: 2)
            let (bytes, decoded) = try roundTrip(c, t)
            let k = max(1, Int(ratio * Double(n)))
            #expect(bytes.count == 8 * k, "§10: 64k bits")
            let kept = (0..<n).filter { decoded.scalars[$0] != 0 }
            #expect(kept.count == k)
            // The k-th largest magnitude by sorting, and every kept entry at least that large.
            let kth = t.scalars.map(abs).sorted(by: >)[k - 1]
            #expect(kept.allSatisfy { abs(t.scalars[$0]) >= kth })
            #expect(kept.allSatisfy { decoded.scalars[$0] == t.scalars[$0] })
        }
    }

    @Test func topKWithManyTiesKeepsTheLowestIndices() throws {
        let t = try Tensor(shape: [10], scalars: [1, 3, 3, 2, 3, 3, 0, 3, 1, 1])
        let d = try roundTrip(try TopK(ratio: 0.3), t).decoded
        #expect(d.scalars == [0, 3, 3, 0, 3, 0, 0, 0, 0, 0])
    }

    @Test func topKRejectsNaN() throws {
        var t = normalTensor([100], seed: 1)
        t.scalars[50] = .nan
        #expect(throws: CompressorError.self) { _ = try TopK(ratio: 0.05).encode(t, key: .init(rank: 0, step: 0, tensor: 0)) }
        #expect(throws: GradientCompressionError.self) { _ = try TopK(ratio: 0) }
    }

    @Test func randomKDrawsTheSameDistinctIndicesOnEveryWorker() throws {
        let c = try RandomK(ratio: 0.05, seed: 42)
        for step in 0..<5 {
            let per = (0..<4).map { rank in
                // The rank in the key must not matter for shared randomness.
                c.indices(elements: 10_000, key: CompressionKey(rank: rank, step: step, tensor: 1))
            }
            #expect(per.allSatisfy { $0 == per[0] })
            #expect(per[0].count == 500)
            #expect(Set(per[0]).count == 500 && per[0] == per[0].sorted() && per[0].last! < 10_000)
        }
        #expect(c.indices(elements: 10_000, key: .init(rank: 0, step: 0, tensor: 1)) != c.indices(elements: 10_000, key: .init(rank: 0, step: 1, tensor: 1)))
    }

    @Test func randomKIndicesAreUniform() throws {
        // Each of n = 50 positions is drawn with probability k/n = 0.2; over 5000 draws the count
        // has mean 1000 and sd √(5000·0.2·0.8) ≈ 28.3: allow 5 sd.
        let c = try RandomK(ratio: 0.2, seed: 1)
        var counts = [Int](repeating: 0, count: 50)
        for step in 0..<5000 { for i in c.indices(elements: 50, key: .init(rank: 0, step: step, tensor: 0)) { counts[i] += 1 } }
        #expect(counts.allSatisfy { abs($0 - 1000) <= 142 })
    }

    @Test func unbiasedRandomKIsUnbiased() throws {
        let t = normalTensor([40], seed: 3)
        let c = try RandomK(ratio: 0.25, unbiased: true, seed: 4)
        let trials = 4000
        let m = decodedMoments(trials, t) { step in
            let key = CompressionKey(rank: 0, step: step, tensor: 0)
            var coefficients = [Float](repeating: 0, count: c.coefficientCount(shape: t.shape))
            var out = Tensor(shape: t.shape)
            try! t.withUnsafeBufferPointer { v in try coefficients.withUnsafeMutableBufferPointer { try c.encode(v, shape: t.shape, key: key, into: $0) } }
            coefficients.withUnsafeBufferPointer { co in out.withUnsafeMutableBufferPointer { c.decode(co, shape: t.shape, key: key, into: $0) } }
            return out
        }
        #expect(unbiasednessViolations(t, mean: m.mean, variance: m.variance, trials: trials).isEmpty)
    }
}

/// Top-K on buffers large enough (≥ 2¹⁶) for the sampled-threshold pass, including inputs built so
/// that the strided sample misleads and the radix fallback must take over.
@Suite struct LargeTopKTests {
    /// Exactly the k largest magnitudes, ties broken by lowest index, ascending: by sorting.
    static func reference(_ x: [Float], k: Int) -> [Int32] {
        let order = x.indices.sorted { (i: Int, j: Int) -> Bool in
            let a: Float = abs(x[i]), b: Float = abs(x[j])
            return a != b ? a > b : i < j
        }
        return order.prefix(k).sorted().map { Int32($0) }
    }

    @Test(arguments: [TopK.Selection.exact, .sampled])
    func selectsTheReferenceIndices(selection: TopK.Selection) throws {
        let n = 200_000
        var inputs: [(String, [Float])] = [("gaussian", normalTensor([n], seed: 21).scalars)]
        // Heavy ties: 16 distinct magnitudes.
        inputs.append(("ties", normalTensor([n], seed: 22).scalars.map { (v: Float) -> Float in (v * 4).rounded() / 4 }))
        // The large values sit exactly where the stride-100 sample looks: the sampled threshold is too high.
        inputs.append(("sampled-large", (0..<n).map { (i: Int) -> Float in i % 100 == 0 ? 10 + Float(i % 7) : Float(i % 13) * 1e-3 }))
        // The sample sees only small values: the threshold is too low (too many candidates).
        inputs.append(("sampled-small", (0..<n).map { (i: Int) -> Float in i % 100 == 0 ? 1e-6 : 1 + Float(i % 1000) * 1e-3 }))
        for (name, x) in inputs {
            for ratio in [0.01, 0.001, 0.3] {
                let c = try TopK(ratio: ratio, selection: selection, seed: 4)
                let k = max(1, Int(ratio * Double(n)))
                let chosen = x.withUnsafeBufferPointer { c.select($0, key: .init(rank: 0, step: 1, tensor: 0)) }
                #expect(chosen == Self.reference(x, k: k), "\(name), ratio \(ratio)")
            }
        }
    }
}
