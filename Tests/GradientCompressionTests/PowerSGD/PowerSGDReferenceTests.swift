import Collectives
import LinearAlgebra
import Testing
import TestSupport
@testable import GradientCompression

/// The fast PowerSGD step (packed buffers, fused kernels, deferred residual, collectives) and
/// the plain Algorithm 1 of `PowerSGDReference` give the same outputs on the same inputs, step
/// after step, for every error-feedback variant, with and without warm start.
@Suite struct PowerSGDReferenceTests {
    static let shapes: [[Int]] = [[16, 12], [7], [8, 3, 3, 3], [20, 20], [16, 12]]

    static let cases: [PowerSGD.Options] = [
        PowerSGD.Options(rank: 2),
        PowerSGD.Options(rank: 1, errorFeedback: .global),
        PowerSGD.Options(rank: 3, errorFeedback: .off),
        PowerSGD.Options(rank: 2, warmStart: false, seed: 9),
        PowerSGD.Options(rank: 2, startIteration: 2),
        PowerSGD.Options(rank: 4, minCompressionRate: 1),
        PowerSGD.Options(rank: 2, powerIterations: 3),
        PowerSGD.Options(rank: 1, errorFeedback: .global, warmStart: false, seed: 4, powerIterations: 2),
    ]

    @Test(arguments: cases.indices)
    func fastStepMatchesTheReference(index: Int) throws {
        let options = Self.cases[index]
        let workers = 3, steps = 6
        let fast = try InProcessGroup.run(workers: workers) { group -> [[Tensor]] in
            var reducer = try PowerSGD(options)
            return try (0..<steps).map { step in
                var g = LowRankFixtures.gradients(Self.shapes, rank: group.rank, step: step)
                _ = try reducer.reduce(&g, over: group)
                return g
            }
        }
        var reference = PowerSGDReference(options)
        for step in 0..<steps {
            let inputs = (0..<workers).map { LowRankFixtures.gradients(Self.shapes, rank: $0, step: step) }
            let expected = reference.step(inputs)
            for w in 0..<workers {
                let difference = relativeDifference(fast[w][step], expected)
                #expect(difference < 1e-4, "options \(index), step \(step), worker \(w): ‖fast − reference‖/‖reference‖ = \(difference)")
            }
        }
        // The reference is not the input echoed back: compression changed the compressed tensors.
        let inputs = (0..<workers).map { LowRankFixtures.gradients(Self.shapes, rank: $0, step: steps - 1) }
        #expect(relativeDifference(fast[0][steps - 1], LowRankFixtures.mean(inputs)) > 1e-2)
    }
}
