import Collectives
import LinearAlgebra
import Testing
@testable import GradientCompression
import TestSupport

@Suite struct PowerSGDPlusTests {
    /// At a refresh step the output is the exact rank-r truncation of the average
    /// error-corrected gradient (our §2 design), and between refreshes it is a power step.
    @Test func refreshStepAppliesTheExactTruncationOfTheMean() throws {
        let shapes: [[Int]] = [[24, 40], [12, 30], [7]]
        let outputs = try InProcessGroup.run(workers: 2) { group -> [[Tensor]] in
            var reducer = try PowerSGDPlus(PowerSGD.Options(rank: 2, errorFeedback: .off), period: 3)
            return try (0..<4).map { step in
                var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: step)
                _ = try reducer.reduce(&g, over: group)
                return g
            }
        }
        for step in [0, 3] {
            let mean = LowRankFixtures.mean((0..<2).map { LowRankFixtures.gradients(shapes, rank: $0, step: step) })
            for index in 0..<2 {
                let expected = try SingularValueDecomposition(mean[index]).reconstruction(rank: 2)
                let difference = relativeDifference([outputs[0][step][index]], [expected])
                #expect(difference < 1e-4, "step \(step), tensor \(index): \(difference)")
            }
            #expect(relativeDifference([outputs[1][step][2]], [mean[2]]) < 1e-6)
        }
        // Step 1 is a power step: not the exact truncation of step 1's mean.
        let mean1 = LowRankFixtures.mean((0..<2).map { LowRankFixtures.gradients(shapes, rank: $0, step: 1) })
        let exact1 = try SingularValueDecomposition(mean1[0]).reconstruction(rank: 2)
        #expect(relativeDifference([outputs[0][1][0]], [exact1]) > 1e-3)
        #expect(outputs[0] == outputs[1])
    }

    /// The refresh step's payload is the whole gradient in fp32.
    @Test func refreshStepSendsTheFullGradient() throws {
        let shapes: [[Int]] = [[24, 40], [7]]
        let payloads = try InProcessGroup.run(workers: 2) { group -> [Int] in
            var reducer = try PowerSGDPlus(PowerSGD.Options(rank: 1), period: 2)
            return try (0..<3).map { step in
                var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: step)
                return try reducer.reduce(&g, over: group).payloadBytes
            }
        }[0]
        #expect(payloads[1] == 4 * (1 * (24 + 40) + 7))
        #expect(payloads[2] == 4 * (24 * 40 + 7))
    }
}
