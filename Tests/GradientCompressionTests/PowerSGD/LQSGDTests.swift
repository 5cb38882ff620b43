import Collectives
import Foundation
import LinearAlgebra
import Testing
@testable import GradientCompression

@Suite struct LQSGDTests {
    /// The codec: zero and ±scale exact; every value within one log step of its input;
    /// bytes = 4 + ⌈b·count/8⌉.
    @Test(arguments: [2, 4, 8])
    func logCodecRoundTrip(bits: Int) {
        let codec = LogQuantizer(bits: bits, alpha: 10)
        let values: [Float] = (0..<37).map { Float($0 - 18) / 18 * 3 }
        var bytes: [UInt8] = []
        codec.encode(values[...], into: &bytes)
        #expect(bytes.count == 4 + (bits * 37 + 7) / 8)
        var cursor = 0
        let decoded = codec.decode(bytes, cursor: &cursor, count: 37)
        #expect(cursor == bytes.count)
        #expect(decoded[18] == 0 && abs(decoded[0] + 3) < 1e-5 && abs(decoded[36] - 3) < 1e-5)
        // Largest gap between neighbouring levels is at the top: s·(1 − (1+α)^{−1/L})·(1+α)/α;
        // rounding is to the nearest level in log space, so the error is below one gap.
        let l = Float((1 << (bits - 1)) - 1)
        let gap = 3 * (1 - Float(exp(-log(11.0) / Double(l)))) * 11 / 10
        for (x, y) in zip(values, decoded) { #expect(abs(x - y) <= gap + 1e-5, "\(x) → \(y)") }
    }

    /// Mass conservation with quantized factors, identical results on every worker, and the
    /// exact payload of the all-gathered codes.
    @Test func errorFeedbackConservesMassWithQuantizedFactors() throws {
        let shapes: [[Int]] = [[24, 40], [7]]
        let steps = 4
        let results = try InProcessGroup.run(workers: 3) { group -> (Tensor, [Float], Int, Tensor) in
            var reducer = try LQSGD(rank: 2, bits: 4)
            var applied = Tensor(shape: [24, 40])
            var payload = 0
            var last = applied
            for step in 0..<steps {
                var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: step)
                payload = try reducer.reduce(&g, over: group).payloadBytes
                for j in applied.scalars.indices { applied.scalars[j] += g[0].scalars[j] }
                last = g[0]
            }
            return (applied, reducer.error, payload, last)
        }
        var lhs = results[0].0
        for j in lhs.scalars.indices { lhs.scalars[j] += results.reduce(Float(0)) { $0 + $1.1[j] } / 3 }
        var rhs = Tensor(shape: [24, 40])
        for step in 0..<steps {
            let mean = LowRankFixtures.mean((0..<3).map { LowRankFixtures.gradients(shapes, rank: $0, step: step) })
            for j in rhs.scalars.indices { rhs.scalars[j] += mean[0].scalars[j] }
        }
        #expect(LowRankFixtures.relativeDifference([lhs], [rhs]) < 1e-5)
        #expect(results[1].3 == results[0].3 && results[2].3 == results[0].3)
        // P: 4 + ⌈4·48/8⌉, Q: 4 + ⌈4·80/8⌉ bytes all-gathered; the 1-D tensor all-reduced in fp32.
        #expect(results[0].2 == (4 + 24) + (4 + 40) + 4 * 7)
    }
}
