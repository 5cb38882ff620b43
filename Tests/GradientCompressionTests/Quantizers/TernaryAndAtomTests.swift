import Foundation
import Testing
import LinearAlgebra
@testable import GradientCompression
import TestSupport

@Suite struct TernaryAndAtomTests {
    @Test func ternGradIsUnbiasedWithoutClippingAndHasTheFormulaSize() throws {
        let t = normalTensor([60], seed: 2)
        let c = try TernGrad(clip: 0, seed: 1)
        #expect(try c.encode(t, key: .init(rank: 0, step: 0, tensor: 0)).count == 4 + (2 * 60 + 7) / 8)
        let trials = 4000
        let m = try decodedMoments(trials, t) { try c.decode(try c.encode(t, key: .init(rank: 0, step: $0, tensor: 0)), shape: t.shape, key: .init(rank: 0, step: $0, tensor: 0)) }
        #expect(unbiasednessViolations(t, mean: m.mean, variance: m.variance, trials: trials).isEmpty)
    }

    @Test func ternGradWithClippingIsUnbiasedForTheClippedTensor() throws {
        var t = normalTensor([60], seed: 3)
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

    @Test func atomoProbabilitiesOfWorkedExamples() {
        // λ = (10, 1, 1, 1), s = 2: atom 0 saturates, the rest share the remaining budget 1 → 1/3 each.
        let p = ATOMO.probabilities(for: [10, 1, 1, 1], budget: 2)
        #expect(p[0] == 1 && p[1...].allSatisfy { abs($0 - 1.0 / 3) < 1e-12 })
        // Proportional when nothing saturates; all ones when the budget covers every atom; zeros stay 0.
        #expect(ATOMO.probabilities(for: [4, 3, 2, 1], budget: 1) == [0.4, 0.3, 0.2, 0.1])
        #expect(ATOMO.probabilities(for: [4, 3, 0], budget: 5) == [1, 1, 0])
    }

    /// The optimality (KKT) conditions of min Σ λᵢ²/pᵢ subject to Σ pᵢ = s, 0 ≤ pᵢ ≤ 1 (§4.2), on
    /// 5000 random spectra (lengths 1–24, magnitudes over six decades, some zeros, budgets from
    /// 0.01 to beyond the length): 0 ≤ p ≤ 1; Σ p = min(s, #nonzero λ); λ = 0 gets p = 0; the
    /// unsaturated pᵢ (0 < pᵢ < 1) are λᵢ/c with one common c; every saturated atom (p = 1) has
    /// λᵢ ≥ c (else moving probability to it would lower the variance).
    @Test func atomoProbabilitiesSatisfyTheOptimalityConditions() {
        var rng = Xoshiro256(seed: 41)
        func uniform() -> Double { Double(rng.next() >> 11) * 0x1p-53 }
        var violations: [String] = []
        for trial in 0..<5000 {
            let count = 1 + Int(rng.next() % 24)
            var lambda = (0..<count).map { _ in Float(pow(10, 6 * uniform() - 3)) }
            for i in lambda.indices where rng.next() % 6 == 0 { lambda[i] = 0 }
            lambda.sort(by: >)
            let budget = 0.01 + uniform() * Double(count + 2)
            let p = ATOMO.probabilities(for: lambda, budget: budget)
            let nonzero = lambda.filter { $0 > 0 }.count
            func fail(_ what: String) { violations.append("trial \(trial) λ=\(lambda) s=\(budget) p=\(p): \(what)") }
            if p.count != count || !p.allSatisfy({ $0 >= 0 && $0 <= 1 }) { fail("p outside [0, 1]"); continue }
            if abs(p.reduce(0, +) - min(budget, Double(nonzero))) > 1e-9 * max(1, budget) { fail("Σp ≠ min(s, #nonzero)") }
            if zip(lambda, p).contains(where: { $0.0 == 0 && $0.1 != 0 }) { fail("λ = 0 with p > 0") }
            let ratios = zip(lambda, p).filter { $0.1 > 0 && $0.1 < 1 }.map { Double($0.0) / $0.1 }
            guard let c = ratios.first else {
                if nonzero > 0, budget < Double(nonzero) - 1e-9 { fail("no unsaturated atom though s < #nonzero") }
                continue
            }
            if ratios.contains(where: { abs($0 - c) > 1e-9 * c }) { fail("unsaturated λ/p differ: \(ratios)") }
            if zip(lambda, p).contains(where: { $0.1 == 1 && Double($0.0) < c * (1 - 1e-9) }) { fail("a saturated atom has λ < c = \(c)") }
        }
        #expect(violations.isEmpty, "\(violations.count) violations, first: \(violations.first ?? "")")
    }

    @Test func atomoIsUnbiasedAndMessagesHaveTheFormulaSize() throws {
        let t = normalTensor([6, 5], seed: 4)
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
        let t = normalTensor([8, 2, 3], seed: 9)
        let d = try roundTrip(try ATOMO(budget: 10), t).decoded
        for i in 0..<t.count { #expect(abs(d.scalars[i] - t.scalars[i]) < 1e-4) }
        #expect(try roundTrip(try ATOMO(budget: 2), Tensor(shape: [4, 4])).decoded == Tensor(shape: [4, 4]))
        var bad = t
        bad.scalars[3] = .nan
        #expect(throws: CompressorError.self) { _ = try ATOMO(budget: 1).encode(bad, key: .init(rank: 0, step: 0, tensor: 0)) }
    }

    @Test func oneBitSGDReconstructsColumnMeansWithTheFormulaSize() throws {
        let t = normalTensor([20, 3], seed: 5)
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
