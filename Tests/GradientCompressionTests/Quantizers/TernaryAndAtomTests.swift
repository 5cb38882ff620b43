import Testing
import LinearAlgebra
@testable import GradientCompression

@Suite struct TernaryAndAtomTests {
    @Test func ternGradIsUnbiasedWithoutClippingAndHasTheFormulaSize() throws {
        let t = gaussian([60], seed: 2)
        let c = try TernGrad(clip: 0, seed: 1)
        #expect(try c.encode(t, key: .init(rank: 0, step: 0, tensor: 0)).count == 4 + (2 * 60 + 7) / 8)
        let trials = 4000
        let m = try decodedMoments(trials, t) { try c.decode(try c.encode(t, key: .init(rank: 0, step: $0, tensor: 0)), shape: t.shape, key: .init(rank: 0, step: $0, tensor: 0)) }
        #expect(unbiasednessViolations(t, mean: m.mean, variance: m.variance, trials: trials).isEmpty)
    }

    @Test func ternGradWithClippingIsUnbiasedForTheClippedTensor() throws {
        var t = gaussian([60], seed: 3)
        t.scalars[10] = 40  // far beyond 2.5σ
        let c = try TernGrad(clip: 2.5, seed: 1)
        let bound = t.withUnsafeBufferPointer { c.clipBound($0) }
        let clipped = Tensor(shape: t.shape) { max(-bound, min(bound, t.scalars[$0])) }
        let trials = 4000
        let m = try decodedMoments(trials, t) { try c.decode(try c.encode(t, key: .init(rank: 0, step: $0, tensor: 0)), shape: t.shape, key: .init(rank: 0, step: $0, tensor: 0)) }
        #expect(unbiasednessViolations(clipped, mean: m.mean, variance: m.variance, trials: trials).isEmpty)
        let once = try roundTrip(c, t).decoded
        #expect(once.scalars.allSatisfy { $0 == 0 || abs(abs($0) - bound) <= 1e-6 * bound })
        #expect(try roundTrip(c, Tensor(shape: [5])).decoded == Tensor(shape: [5]))
    }

    @Test func atomoProbabilitiesMinimizeVarianceUnderTheBudget() {
        // λ = (10, 1, 1, 1), s = 2: atom 0 saturates, the rest share the remaining budget 1 → 1/3 each.
        let p = ATOMO.probabilities(for: [10, 1, 1, 1], budget: 2)
        #expect(p[0] == 1 && p[1...].allSatisfy { abs($0 - 1.0 / 3) < 1e-12 })
        // Proportional when nothing saturates; all ones when the budget covers every atom; zeros stay 0.
        #expect(ATOMO.probabilities(for: [4, 3, 2, 1], budget: 1) == [0.4, 0.3, 0.2, 0.1])
        #expect(ATOMO.probabilities(for: [4, 3, 0], budget: 5) == [1, 1, 0])
        // Σ p = s, and no other feasible p of this example has a smaller Σ λ²/p (checked on a grid).
        let lambda: [Float] = [5, 4, 1, 0.5]
        let best = ATOMO.probabilities(for: lambda, budget: 2)
        #expect(abs(best.reduce(0, +) - 2) < 1e-12)
        func variance(_ p: [Double]) -> Double { zip(lambda, p).reduce(0) { $0 + Double($1.0 * $1.0) / $1.1 } }
        for a in stride(from: 0.05, through: 1, by: 0.05) { for b in stride(from: 0.05, through: 1, by: 0.05) {
            let rest = 2 - a - b
            guard rest > 0.02, rest < 1.98 else { continue }
            let c = min(1, rest * 0.66), d = rest - c
            guard d > 0, d <= 1 else { continue }
            #expect(variance([a, b, c, d]) >= variance(best) - 1e-9)
        } }
    }

    @Test func atomoIsUnbiasedAndMessagesHaveTheFormulaSize() throws {
        let t = gaussian([6, 5], seed: 4)
        let c = try ATOMO(budget: 2, seed: 3)
        let trials = 4000
        var sizes = 0.0
        let m = try decodedMoments(trials, t) { step in
            let key = CompressionKey(rank: 0, step: step, tensor: 0)
            let bytes = try c.encode(t, key: key)
            let count = Int(bytes[0]) | Int(bytes[1]) << 8
            #expect(bytes.count == 4 + 4 * count * (6 + 5 + 1))
            sizes += Double(count) / Double(trials)
            return try c.decode(bytes, shape: t.shape, key: key)
        }
        #expect(unbiasednessViolations(t, mean: m.mean, variance: m.variance, trials: trials).isEmpty)
        // E|S| = s = 2; the count's sd is ≤ √(Σ p(1−p)) ≤ 1.2, so the mean of 4000 is within 0.1.
        #expect(abs(sizes - 2) < 0.1)
    }

    @Test func atomoReshapesOneDimensionalAndConvTensors() throws {
        #expect(ATOMO.matrixShape([12]) == (3, 4))
        #expect(ATOMO.matrixShape([13]) == (1, 13))
        #expect(ATOMO.matrixShape([64, 3, 3, 3]) == (64, 27))
        #expect(ATOMO.matrixShape([]) == (1, 1))
        // A full budget reproduces the tensor (every atom has p = 1).
        let t = gaussian([8, 2, 3], seed: 9)
        let d = try roundTrip(try ATOMO(budget: 10), t).decoded
        for i in 0..<t.count { #expect(abs(d.scalars[i] - t.scalars[i]) < 1e-4) }
        #expect(try roundTrip(try ATOMO(budget: 2), Tensor(shape: [4, 4])).decoded == Tensor(shape: [4, 4]))
        var bad = t
        bad.scalars[3] = .nan
        #expect(throws: CompressorError.self) { _ = try ATOMO(budget: 1).encode(bad, key: .init(rank: 0, step: 0, tensor: 0)) }
    }

    @Test func oneBitSGDReconstructsColumnMeansWithTheFormulaSize() throws {
        let t = gaussian([20, 3], seed: 5)
        let (bytes, decoded) = try roundTrip(OneBitSGD(), t)
        #expect(bytes.count == 8 * 3 + (60 + 7) / 8)
        for j in 0..<3 {
            let column = (0..<20).map { t.scalars[$0 * 3 + j] }
            let negatives = column.filter { $0 < 0 }, others = column.filter { $0 >= 0 }
            let lower = negatives.reduce(0, +) / Float(max(1, negatives.count)), upper = others.reduce(0, +) / Float(max(1, others.count))
            for r in 0..<20 {
                #expect(abs(decoded.scalars[r * 3 + j] - (column[r] < 0 ? lower : upper)) < 1e-5)
            }
        }
        // The reconstruction preserves each column's sum (the property that makes EF converge).
        for j in 0..<3 {
            let a = (0..<20).reduce(0) { $0 + t.scalars[$1 * 3 + j] }, b = (0..<20).reduce(0) { $0 + decoded.scalars[$1 * 3 + j] }
            #expect(abs(a - b) < 1e-4)
        }
    }
}
