import Collectives
import LinearAlgebra
import Testing
@testable import GradientCompression
import TestSupport

@Suite struct ExactSVDReducerTests {
    /// Output = mean over workers of each worker's own best rank-r approximation (brute force:
    /// SVD of each worker's matrix here), identical on every worker; exact payload.
    @Test func averagesEachWorkersTruncatedSVD() throws {
        let shapes: [[Int]] = [[24, 40], [12, 3, 3, 3], [9]]
        let workers = 3
        let results = try InProcessGroup.run(workers: workers) { group -> ([Tensor], ReductionStats, [Float]) in
            var reducer = try ExactSVDReducer(rank: 2)
            var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: 0)
            let stats = try reducer.reduce(&g, over: group)
            return (g, stats, reducer.error)
        }
        let inputs = (0..<workers).map { LowRankFixtures.gradients(shapes, rank: $0, step: 0) }
        for index in 0..<2 {
            var expected = Tensor(shape: shapes[index])
            for w in 0..<workers {
                let (n, m) = inputs[w][index].matrixShape
                let approximation = try SingularValueDecomposition(try inputs[w][index].reshaped(to: [n, m])).reconstruction(rank: 2)
                for j in expected.scalars.indices { expected.scalars[j] += approximation.scalars[j] / Float(workers) }
            }
            #expect(relativeDifference([results[0].0[index]], [expected]) < 1e-5)
        }
        #expect(relativeDifference([results[0].0[2]], [LowRankFixtures.mean(inputs)[2]]) < 1e-6)
        for r in 1..<workers { #expect(results[r].0 == results[0].0) }
        // First call also all-gathers the shape list; check the second step's exact payload.
        let second = try InProcessGroup.run(workers: 2) { group -> Int in
            var reducer = try ExactSVDReducer(rank: 2)
            var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: 0)
            _ = try reducer.reduce(&g, over: group)
            g = LowRankFixtures.gradients(shapes, rank: group.rank, step: 1)
            return try reducer.reduce(&g, over: group).payloadBytes
        }[0]
        // S is folded into U (U_r·S_r is sent), so r(n+m) floats per matrix, not paper-code's r(n+m+1).
        #expect(second == 4 * (2 * (24 + 40) + 2 * (12 + 27) + 9))
    }

    @Test func errorFeedbackConservesMassAndCheckpointRoundTrips() throws {
        let shapes: [[Int]] = [[16, 20], [5]]
        let results = try InProcessGroup.run(workers: 2) { group -> (Double, [Tensor], [Tensor]) in
            var reducer = try ExactSVDReducer(rank: 1)
            var applied = Tensor(shape: [16, 20]), sum = Tensor(shape: [16, 20])
            for step in 0..<3 {
                var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: step)
                let mean = LowRankFixtures.mean((0..<2).map { LowRankFixtures.gradients(shapes, rank: $0, step: step) })
                _ = try reducer.reduce(&g, over: group)
                for j in 0..<320 { applied.scalars[j] += g[0].scalars[j]; sum.scalars[j] += mean[0].scalars[j] }
            }
            var errors = [Float](repeating: 0, count: 320)
            try reducer.error.withUnsafeMutableBufferPointer { try group.allReduce($0, operation: .mean) }
            for j in 0..<320 { errors[j] = reducer.error[j]; applied.scalars[j] += errors[j] }
            var writer = StateWriter()
            reducer.saveState(to: &writer)
            var restored = try ExactSVDReducer(rank: 1)
            var reader = StateReader(writer.bytes)
            try restored.restoreState(from: &reader)
            var a = LowRankFixtures.gradients(shapes, rank: group.rank, step: 9), b = a
            _ = try reducer.reduce(&a, over: group)
            _ = try restored.reduce(&b, over: group)
            return (relativeDifference([applied], [sum]), a, b)
        }
        for (difference, a, b) in results {
            #expect(difference < 1e-5)
            #expect(a == b)
        }
    }
}
