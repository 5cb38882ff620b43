import Collectives
import LinearAlgebra
import Testing
@testable import GradientCompression

@Suite struct UncompressedReducerTests {
    /// The SGD baseline: the exact mean (sum in rank order × 1/W), the same bits on every
    /// worker, one all-reduce of 4·d bytes.
    @Test func exactMeanInOneAllReduce() throws {
        let shapes: [[Int]] = [[20, 30], [7], [3, 3, 2, 2]]
        let results = try InProcessGroup.run(workers: 3) { group -> ([Tensor], ReductionStats) in
            var reducer = UncompressedReducer()
            var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: 0)
            let stats = try reducer.reduce(&g, over: group)
            return (g, stats)
        }
        let inputs = (0..<3).map { LowRankFixtures.gradients(shapes, rank: $0, step: 0) }
        for index in shapes.indices {
            for j in inputs[0][index].scalars.indices {
                let expected = (inputs[0][index].scalars[j] + inputs[1][index].scalars[j] + inputs[2][index].scalars[j]) * (1 / Float(3))
                #expect(results[0].0[index].scalars[j] == expected)
            }
        }
        #expect(results[1].0 == results[0].0 && results[2].0 == results[0].0)
        let d = shapes.reduce(0) { $0 + Tensor.elementCount($1) }
        #expect(results[0].1.payloadBytes == 4 * d && results[0].1.collectives.count == 1 && results[0].1.compressionRatio == 1)
    }
}
