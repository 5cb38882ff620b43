import Testing
import Collectives
import LinearAlgebra
@testable import GradientCompression

@Suite struct DeepGradientCompressionTests {
    @Test func warmupFollowsThePapersSchedule() throws {
        let dgc = try DeepGradientCompression(density: 0.001, warmupEpochs: 4, stepsPerEpoch: 10)
        let expected = [0.2512, 0.0631, 0.01585, 0.00398, 0.001]  // 75%, 93.7%, 98.4%, 99.6%, 99.9% sparsity
        for (epoch, d) in expected.enumerated() { #expect(abs(dgc.density(atStep: epoch * 10 + 3) - d) < 1e-3 * max(d, 0.01)) }
        #expect(try DeepGradientCompression(density: 0.01).density(atStep: 0) == 0.01)
    }

    @Test func sendsTheLargestAccumulatedValuesAndKeepsTheRest() throws {
        let results = try InProcessGroup.run(workers: 2) { group -> ([Tensor], [Tensor], Int) in
            var dgc = try DeepGradientCompression(density: 0.1, momentum: 0.5, sampleRatio: 0.5, denseBelow: 8)
            var g = [gaussian([200], seed: 10 + UInt64(group.rank)), gaussian([5], seed: 20 + UInt64(group.rank))]
            let stats = try dgc.reduce(&g, over: group)
            return (g, dgc.accumulators, stats.payloadBytes)
        }
        for rank in 0..<2 {
            let g = gaussian([200], seed: 10 + UInt64(rank))
            // Step 1: u = g, v = g; the 20 largest |g| are sent and cleared from v.
            let kth = g.scalars.map(abs).sorted(by: >)[19]
            let v = results[rank].1[0]
            for j in 0..<200 { #expect(v.scalars[j] == (abs(g.scalars[j]) >= kth ? 0 : g.scalars[j])) }
            // 8·20 bytes of sparse entries + the 5-element dense tensor all-reduced (20 bytes).
            #expect(results[rank].2 == 160 + 20)
        }
        let g0 = gaussian([200], seed: 10), g1 = gaussian([200], seed: 11)
        for j in 0..<200 {
            let sent0 = results[0].1[0].scalars[j] == 0 ? g0.scalars[j] : 0
            let sent1 = results[1].1[0].scalars[j] == 0 ? g1.scalars[j] : 0
            #expect(abs(results[0].0[0].scalars[j] - (sent0 + sent1) / 2) < 1e-6)
        }
        #expect(results[0].0 == results[1].0)
        let small = (0..<5).map { (gaussian([5], seed: 20).scalars[$0] + gaussian([5], seed: 21).scalars[$0]) / 2 }
        for j in 0..<5 { #expect(abs(results[0].0[1].scalars[j] - small[j]) < 1e-6) }
    }
}
