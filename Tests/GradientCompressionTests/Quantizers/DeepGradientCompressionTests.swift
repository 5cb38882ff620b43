import Testing
import Collectives
import LinearAlgebra
@testable import GradientCompression
import TestSupport

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
            var g = [normalTensor([200], seed: 10 + UInt64(group.rank)), normalTensor([5], seed: 20 + UInt64(group.rank))]
            let stats = try dgc.reduce(&g, over: group)
            return (g, dgc.accumulators, stats.payloadBytes)
        }
        for rank in 0..<2 {
            let g = normalTensor([200], seed: 10 + UInt64(rank))
            // Step 1: u = g, v = g; the 20 largest |g| are sent and cleared from v.
            let kth = g.scalars.map(abs).sorted(by: >)[19]
            let v = results[rank].1[0]
            for j in 0..<200 { #expect(v.scalars[j] == (abs(g.scalars[j]) >= kth ? 0 : g.scalars[j])) }
            // 8·20 bytes of sparse entries + the 5-element dense tensor all-reduced (20 bytes).
            #expect(results[rank].2 == 160 + 20)
        }
        let g0 = normalTensor([200], seed: 10), g1 = normalTensor([200], seed: 11)
        for j in 0..<200 {
            let sent0 = results[0].1[0].scalars[j] == 0 ? g0.scalars[j] : 0
            let sent1 = results[1].1[0].scalars[j] == 0 ? g1.scalars[j] : 0
            #expect(abs(results[0].0[0].scalars[j] - (sent0 + sent1) / 2) < 1e-6)
        }
        #expect(results[0].0 == results[1].0)
        let small = (0..<5).map { (normalTensor([5], seed: 20).scalars[$0] + normalTensor([5], seed: 21).scalars[$0]) / 2 }
        for j in 0..<5 { #expect(abs(results[0].0[1].scalars[j] - small[j]) < 1e-6) }
    }

    /// Three steps on two workers against u, v written out by hand, for both momentum rules and
    /// with and without momentum-factor masking. One step cannot tell momentum correction from
    /// plain accumulation (u = g on the first step either way); three can.
    @Test(arguments: [(false, true), (false, false), (true, true), (true, false)])
    func threeStepsFollowMomentumCorrectionByHand(nesterov: Bool, maskMomentum: Bool) throws {
        let n = 12, k = 3, m: Float = 0.9, steps = 3
        func gradient(rank: Int, step: Int) -> [Float] {
            (0..<n).map { j in Float(((j * 7 + step * 5 + rank * 3) % 13) - 6) * 0.1 + Float(j) * 0.003 }
        }
        let results = try InProcessGroup.run(workers: 2) { group -> [([Float], [Float], [Float])] in
            var dgc = try DeepGradientCompression(density: Double(k) / Double(n), momentum: m, nesterov: nesterov,
                                                  maskMomentum: maskMomentum, warmupEpochs: 0, sampleRatio: 1)
            var out: [([Float], [Float], [Float])] = []
            for step in 0..<steps {
                var g = [try Tensor(shape: [n], scalars: gradient(rank: group.rank, step: step))]
                _ = try dgc.reduce(&g, over: group)
                out.append((g[0].scalars, dgc.momenta[0].scalars, dgc.accumulators[0].scalars))
            }
            return out
        }
        var u = [[Float]](repeating: [Float](repeating: 0, count: n), count: 2), v = u
        for step in 0..<steps {
            var average = [Float](repeating: 0, count: n)
            for rank in 0..<2 {
                let g = gradient(rank: rank, step: step)
                for j in 0..<n {
                    if nesterov { u[rank][j] = (u[rank][j] + g[j]) * m; v[rank][j] += u[rank][j] + g[j] }
                    else { u[rank][j] = m * u[rank][j] + g[j]; v[rank][j] += u[rank][j] }
                }
                // The k largest |v| (distinct here), sent, cleared, and their momentum masked.
                let sent = (0..<n).sorted { abs(v[rank][$0]) > abs(v[rank][$1]) }.prefix(k)
                for j in sent {
                    average[j] += v[rank][j] / 2
                    v[rank][j] = 0
                    if maskMomentum { u[rank][j] = 0 }
                }
            }
            for rank in 0..<2 {
                let (output, momenta, accumulators) = results[rank][step]
                for j in 0..<n {
                    #expect(abs(output[j] - average[j]) < 1e-5, "step \(step) output[\(j)]")
                    #expect(abs(momenta[j] - u[rank][j]) < 1e-5, "step \(step) rank \(rank) u[\(j)]")
                    #expect(abs(accumulators[j] - v[rank][j]) < 1e-5, "step \(step) rank \(rank) v[\(j)]")
                }
            }
        }
    }

    /// A state whose momentum and accumulator shapes do not match its own layout is refused with
    /// an error naming the tensor, not restored to trap in the next reduce.
    @Test func restoringTensorsOfTheWrongShapeThrows() throws {
        let shapes = [[200], [5]]
        let dgc = try InProcessGroup.run(workers: 1) { group -> DeepGradientCompression in
            var dgc = try DeepGradientCompression(density: 0.1, denseBelow: 1)
            var g = shapes.enumerated().map { normalTensor($1, seed: UInt64($0)) }
            _ = try dgc.reduce(&g, over: group)
            return dgc
        }[0]
        var good = StateWriter()
        dgc.saveState(to: &good)
        var fresh = try DeepGradientCompression(density: 0.1, denseBelow: 1)
        var reader = StateReader(good.bytes)
        try fresh.restoreState(from: &reader)
        #expect(fresh.accumulators == dgc.accumulators)

        var forged = StateWriter()
        forged.write("dgc:\(dgc.name)")
        forged.write(1)
        dgc.layout.save(to: &forged)
        forged.write(2)
        for shape in [[200], [5], [200], [4]] { forged.write(Tensor(shape: shape)) }
        var forgedReader = StateReader(forged.bytes)
        #expect(throws: StateArchiveError.self) { try fresh.restoreState(from: &forgedReader) }
        do { var r = StateReader(forged.bytes); try fresh.restoreState(from: &r) } catch {
            #expect("\(error)".contains("accumulator of tensor 1 with shape [5], not [4]"), "\(error)")
        }
    }
}
