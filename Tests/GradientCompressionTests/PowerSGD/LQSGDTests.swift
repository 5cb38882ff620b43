import Collectives
import Foundation
import LinearAlgebra
import Testing
@testable import GradientCompression
import TestSupport

@Suite struct LQSGDTests {
    /// The codec: zero and ±scale exact; every value within one log step of its input;
    /// bytes = 4 + ⌈b·count/8⌉.
    @Test(arguments: [2, 4, 8])
    func logCodecRoundTrip(bits: Int) throws {
        let codec = LogQuantizer(bits: bits, alpha: 10)
        let values: [Float] = (0..<37).map { Float($0 - 18) / 18 * 3 }
        var bytes: [UInt8] = []
        codec.encode(values[...], into: &bytes)
        #expect(bytes.count == 4 + (bits * 37 + 7) / 8)
        var cursor = 0
        let decoded = try codec.decode(bytes, cursor: &cursor, count: 37, context: "test")
        #expect(cursor == bytes.count)
        #expect(decoded[18] == 0 && abs(decoded[0] + 3) < 1e-5 && abs(decoded[36] - 3) < 1e-5)
        // Largest gap between neighbouring levels is at the top: s·(1 − (1+α)^{−1/L})·(1+α)/α;
        // rounding is to the nearest level in log space, so the error is below one gap.
        let l = Float((1 << (bits - 1)) - 1)
        let gap = 3 * (1 - Float(exp(-log(11.0) / Double(l)))) * 11 / 10
        for (x, y) in zip(values, decoded) { #expect(abs(x - y) <= gap + 1e-5, "\(x) → \(y)") }
    }

    /// A peer's block with a non-finite or negative scale, or a code beyond ±L (the pattern
    /// 2L + 1, which the encoder never writes), is a corrupt message, not a NaN or an
    /// out-of-range value.
    @Test func logCodecRejectsCorruptBlocks() throws {
        let codec = LogQuantizer(bits: 4, alpha: 10)
        var good: [UInt8] = []
        codec.encode([0.5, -1, 0.25][...], into: &good)
        var cursor = 0
        #expect(try codec.decode(good, cursor: &cursor, count: 3, context: "test").count == 3)
        for scale in [Float.nan, .infinity, -1] {
            var bad = good
            withUnsafeBytes(of: scale.bitPattern.littleEndian) { for i in 0..<4 { bad[i] = $0[i] } }
            cursor = 0
            #expect(throws: GradientCompressionError.self) { _ = try codec.decode(bad, cursor: &cursor, count: 3, context: "test") }
        }
        var bad = good
        bad[4] |= 0x0F  // entry 0's field = 15 = 2L + 1
        cursor = 0
        #expect(throws: GradientCompressionError.self) { _ = try codec.decode(bad, cursor: &cursor, count: 3, context: "test") }
    }

    /// Mass conservation with quantized factors, identical results on every worker, the exact
    /// payload of the all-gathered codes, and accuracy: each step's output P̂Q̄ᵀ is PowerSGD's
    /// P̂P̂ᵀM̄ (M̄ the mean of G_w + E_w, P̂ the output's column basis) up to the quantization of Q:
    /// ‖output − P̂P̂ᵀM̄‖ = ‖Q̄ − mean_w M_wᵀP̂‖ ≤ mean_w √(m·r)·gap_w, gap_w the codec's largest
    /// level gap for a block whose scale is at most M_w's largest column norm (|P̂ᵀM_w| entries
    /// are bounded by it). With 8 bits the bound is well below the norm of the projection, so a
    /// zero output fails.
    @Test(arguments: [4, 8])
    func errorFeedbackConservesMassWithQuantizedFactors(bits: Int) throws {
        let shapes: [[Int]] = [[24, 40], [7]]
        let steps = 4, workers = 3
        let results = try InProcessGroup.run(workers: workers) { group -> (Tensor, [Float], Int, Tensor, [Tensor], [[Float]]) in
            var reducer = try LQSGD(rank: 2, bits: bits)
            var applied = Tensor(shape: [24, 40])
            var payload = 0
            var last = applied
            var outputs: [Tensor] = [], memories: [[Float]] = []
            for step in 0..<steps {
                memories.append(reducer.error)
                var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: step)
                payload = try reducer.reduce(&g, over: group).payloadBytes
                for j in applied.scalars.indices { applied.scalars[j] += g[0].scalars[j] }
                last = g[0]
                outputs.append(g[0])
            }
            return (applied, reducer.error, payload, last, outputs, memories)
        }
        var lhs = results[0].0
        for j in lhs.scalars.indices { lhs.scalars[j] += results.reduce(Float(0)) { $0 + $1.1[j] } / Float(workers) }
        var rhs = Tensor(shape: [24, 40])
        for step in 0..<steps {
            let mean = LowRankFixtures.mean((0..<workers).map { LowRankFixtures.gradients(shapes, rank: $0, step: step) })
            for j in rhs.scalars.indices { rhs.scalars[j] += mean[0].scalars[j] }
        }
        #expect(relativeDifference([lhs], [rhs]) < 1e-5)
        #expect(results[1].3 == results[0].3 && results[2].3 == results[0].3)
        // P: 4 + ⌈b·48/8⌉, Q: 4 + ⌈b·80/8⌉ bytes all-gathered; the 1-D tensor all-reduced in fp32.
        #expect(results[0].2 == (4 + (bits * 48 + 7) / 8) + (4 + (bits * 80 + 7) / 8) + 4 * 7)
        let levels = Double((1 << (bits - 1)) - 1), (n, m, r) = (24, 40, 2)
        let gapFactor = (1 - exp(-log(11.0) / levels)) * 11 / 10
        for step in 0..<steps {
            var corrected = (0..<workers).map { LowRankFixtures.gradients(shapes, rank: $0, step: step)[0] }
            var bound = 0.0
            for w in 0..<workers {
                if !results[w].5[step].isEmpty { for j in 0 ..< n * m { corrected[w].scalars[j] += results[w].5[step][j] } }
                let largestColumn = (0..<m).map { j in (0..<n).reduce(0.0) { $0 + square(Double(corrected[w].scalars[$1 * m + j])) }.squareRoot() }.max()!
                bound += (Double(m * r)).squareRoot() * gapFactor * largestColumn / Double(workers)
            }
            let meanInput = LowRankFixtures.mean(corrected.map { [$0] })[0]
            let output = results[0].4[step]
            let basis = try LowRankFixtures.columnBasis(of: output, rank: r)
            let projection = LowRankFixtures.project(meanInput, onto: basis, rank: r)
            let error = LowRankFixtures.norm(zip(output.scalars, projection).map { Double($0) - $1 })
            #expect(error <= bound * 1.0001 + 1e-5, "bits \(bits) step \(step): ‖output − P̂P̂ᵀM̄‖ = \(error) > \(bound)")
            if bits == 8 { #expect(bound < 0.5 * LowRankFixtures.norm(projection), "the bound \(bound) is too loose to test") }
        }
    }
}
