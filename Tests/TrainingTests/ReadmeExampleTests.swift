import Collectives
import GradientCompression
import LinearAlgebra
import Testing

/// The README's "Using the library" example, verbatim in substance: it must compile and give
/// every worker the same averaged gradients.
@Suite struct ReadmeExampleTests {
    @Test func readmeExampleRunsAndAgreesAcrossWorkers() throws {
        AllocatorTuning.apply()
        let results = try InProcessGroup.run(workers: 4) { group -> [Tensor] in
            var reducer = try PowerSGD(PowerSGD.Options(rank: 2))
            var gradients = [Philox(seed: UInt64(group.rank)).normalTensor(shape: [64, 32, 3, 3]),
                             Philox(seed: 9).normalTensor(shape: [64])]
            for _ in 0..<3 {
                group.traffic.beginStep()
                let stats = try reducer.reduce(&gradients, over: group)
                #expect(stats.payloadBytes > 0 && stats.compressionRatio > 1)
            }
            return gradients
        }
        for r in 1..<4 { #expect(results[r] == results[0]) }
    }
}
