import Testing
import Collectives
import LinearAlgebra
@testable import GradientCompression
import TestSupport

/// The reducers over a real in-process group of W = 2, 3, 4 workers.
@Suite struct ElementwiseReducerTests {
    /// Worker w's gradients: a [6, 5] matrix and a [7] vector, different per worker.
    static func gradients(rank: Int) -> [Tensor] {
        [normalTensor([6, 5], seed: 100 + UInt64(rank)), normalTensor([7], seed: 200 + UInt64(rank))]
    }

    static func exactMean(workers: Int) -> [Tensor] {
        let all = (0..<workers).map(gradients)
        return all[0].indices.map { i in
            Tensor(shape: all[0][i].shape) { j in all.reduce(Float(0)) { $0 + $1[i].scalars[j] } / Float(workers) }
        }
    }

    @Test(arguments: [2, 3, 4])
    func allGatherAveragesEveryWorkersDecodedMessageIdenticallyEverywhere(workers: Int) throws {
        // fp16 decodes deterministically, so the average is checkable against the exact mean.
        let results = try InProcessGroup.run(workers: workers) { group -> ([Tensor], ReductionStats) in
            var reducer = AllGatherReducer(HalfPrecisionCompressor(.fp16))
            var g = ElementwiseReducerTests.gradients(rank: group.rank)
            let stats = try reducer.reduce(&g, over: group)
            return (g, stats)
        }
        let mean = ElementwiseReducerTests.exactMean(workers: workers)
        for (g, stats) in results {
            #expect(g == results[0].0)
            for i in g.indices { for j in 0..<g[i].count { #expect(abs(g[i].scalars[j] - mean[i].scalars[j]) < 2e-3) } }
            // Payload: 2 bytes per element (37 elements), no length prefixes for fixed-size messages.
            #expect(stats.payloadBytes == 2 * 37)
            #expect(stats.bytesReceived == (workers - 1) * 2 * 37)
            #expect(stats.uncompressedBytes == 4 * 37)
        }
    }

    @Test(arguments: [2, 3, 4])
    func variableSizeMessagesAreFramedWithTheirLengths(workers: Int) throws {
        let q = try QSGD(levels: 4, bucketSize: 8, format: .elias, seed: 1)
        let results = try InProcessGroup.run(workers: workers) { group -> ([Tensor], Int) in
            var reducer = AllGatherReducer(q)
            var g = ElementwiseReducerTests.gradients(rank: group.rank)
            let stats = try reducer.reduce(&g, over: group)
            return (g, stats.payloadBytes)
        }
        // The oracle: decode each worker's messages by hand and average.
        var expected = ElementwiseReducerTests.gradients(rank: 0).map { Tensor(shape: $0.shape) }
        for rank in 0..<workers {
            let g = ElementwiseReducerTests.gradients(rank: rank)
            var payload = 0
            for i in g.indices {
                let key = CompressionKey(rank: rank, step: 0, tensor: i)
                let bytes = try q.encode(g[i], key: key)
                payload += 4 + bytes.count
                let d = try q.decode(bytes, shape: g[i].shape, key: key)
                for j in 0..<d.count { expected[i].scalars[j] += d.scalars[j] / Float(workers) }
            }
            #expect(results[rank].1 == payload)
        }
        for (g, _) in results { for i in g.indices { for j in 0..<g[i].count { #expect(abs(g[i].scalars[j] - expected[i].scalars[j]) < 1e-5) } } }
    }

    @Test(arguments: [2, 3, 4])
    func randomKAllReduceUsesTheSameIndicesOnEveryWorker(workers: Int) throws {
        let c = try RandomK(ratio: 0.3, seed: 5)
        let results = try InProcessGroup.run(workers: workers) { group -> ([Tensor], ReductionStats) in
            var reducer = AllReduceReducer(c)
            var g = ElementwiseReducerTests.gradients(rank: group.rank)
            let stats = try reducer.reduce(&g, over: group)
            return (g, stats)
        }
        let mean = ElementwiseReducerTests.exactMean(workers: workers)
        for (g, stats) in results {
            #expect(g == results[0].0)
            // Exactly the shared k indices carry the mean; every other entry is 0.
            for i in g.indices {
                let kept = Set(c.indices(elements: g[i].count, key: .init(rank: 0, step: 0, tensor: i)))
                for j in 0..<g[i].count {
                    if kept.contains(j) { #expect(abs(g[i].scalars[j] - mean[i].scalars[j]) < 1e-5) } else { #expect(g[i].scalars[j] == 0) }
                }
            }
            #expect(stats.payloadBytes == 4 * (9 + 2))  // k = ⌊0.3·30⌋ + ⌊0.3·7⌋ floats
        }
    }

    @Test func majorityVoteTiesGiveZeroWithAnEvenNumberOfWorkers() throws {
        // Worker 0: (+, −, +, 0), worker 1: (−, −, +, −), workers 2, 3 below: coordinate 0 ties 2–2.
        let inputs: [[Float]] = [[1, -1, 1, 0], [-1, -1, 1, -1], [2, 3, 1, 0], [-2, -3, -1, 0]]
        let results = try InProcessGroup.run(workers: 4) { group -> [Float] in
            var reducer = try MajorityVoteReducer()
            var g = [try Tensor(shape: [4], scalars: inputs[group.rank])]
            let stats = try reducer.reduce(&g, over: group)
            #expect(stats.payloadBytes == 1)
            return g[0].scalars
        }
        // Votes: c0 = +1 −1 +1 −1 = 0 → 0; c1 = −1 −1 +1 −1 → −1; c2 = +1 +1 +1 −1 → +1;
        // c3: zeros vote +1 (the zero rule): +1 −1 +1 +1 → +1.
        for r in results { #expect(r == [0, -1, 1, 1]) }
    }

    @Test func signumVotesOnTheMomentum() throws {
        let results = try InProcessGroup.run(workers: 3) { group -> [Float] in
            var reducer = try MajorityVoteReducer(momentum: 0.9)
            var last: [Float] = []
            // Step 1 gradient +1 everywhere, then −0.05: the momentum stays positive (0.9·0.1 − 0.1·0.05 > 0).
            for value: Float in [1, -0.05] {
                var g = [Tensor(shape: [5], repeating: value)]
                _ = try reducer.reduce(&g, over: group)
                last = g[0].scalars
            }
            return last
        }
        for r in results { #expect(r == [1, 1, 1, 1, 1]) }
    }

    @Test(arguments: [2, 3])
    func errorFeedbackKeepsWhatWasNotSentAndEF21TracksTheGradient(workers: Int) throws {
        let results = try InProcessGroup.run(workers: workers) { group -> [Double] in
            var ef = try ErrorFeedback(AllGatherReducer(try TopK(ratio: 0.2)))
            var ef21 = try ErrorFeedback(AllGatherReducer(try TopK(ratio: 0.2)), mode: .ef21)
            let fixed = ElementwiseReducerTests.gradients(rank: group.rank)
            // Classic EF: after T steps with a fixed gradient, Σ outputs = T·mean − mean of the residuals,
            // so the running average of the outputs converges to the true mean at rate 1/T.
            var sum = fixed.map { Tensor(shape: $0.shape) }
            let steps = 60
            var lastEF21 = fixed
            for _ in 0..<steps {
                var g = fixed
                let stats = try ef.reduce(&g, over: group)
                #expect(stats.relativeError != nil)
                for i in g.indices { for j in 0..<g[i].count { sum[i].scalars[j] += g[i].scalars[j] } }
                var h = fixed
                _ = try ef21.reduce(&h, over: group)
                lastEF21 = h
            }
            let mean = ElementwiseReducerTests.exactMean(workers: group.size)
            var efError = 0.0, ef21Error = 0.0, norm = 0.0
            for i in mean.indices { for j in 0..<mean[i].count {
                efError += square(Double(sum[i].scalars[j] / Float(steps) - mean[i].scalars[j]))
                ef21Error += square(Double(lastEF21[i].scalars[j] - mean[i].scalars[j]))
                norm += square(Double(mean[i].scalars[j]))
            } }
            return [(efError / norm).squareRoot(), (ef21Error / norm).squareRoot()]
        }
        for r in results {
            // Without EF, Top-20% alone would miss most of the mass; with EF the 60-step average is close.
            #expect(r[0] < 0.1, "EF average relative error \(r[0])")
            // EF21 with a fixed gradient: h_w → g_w geometrically, so H → the exact mean.
            #expect(r[1] < 1e-3, "EF21 relative error \(r[1])")
        }
    }

    @Test func reducerStateRoundTripsAndShapeChangesAreRejected() throws {
        _ = try InProcessGroup.run(workers: 2) { group -> Bool in
            var ef = try ErrorFeedback(AllGatherReducer(SignCompressor(scaling: .meanMagnitude)))
            var g = ElementwiseReducerTests.gradients(rank: group.rank)
            _ = try ef.reduce(&g, over: group)
            var writer = StateWriter()
            ef.saveState(to: &writer)
            var copy = try ErrorFeedback(AllGatherReducer(SignCompressor(scaling: .meanMagnitude)))
            var reader = StateReader(writer.bytes)
            try copy.restoreState(from: &reader)
            var a = ElementwiseReducerTests.gradients(rank: group.rank), b = a
            _ = try ef.reduce(&a, over: group)
            _ = try copy.reduce(&b, over: group)
            #expect(a == b)
            var wrong = [Tensor(shape: [3])]
            #expect(throws: GradientCompressionError.self) { _ = try ef.reduce(&wrong, over: group) }
            return true
        }
    }

    /// A compressor whose rank-1 messages lose their last byte, as a peer's corrupted frame.
    struct TruncatingOnRank1<C: Compressor>: Compressor {
        let inner: C
        var name: String { inner.name }
        func fixedMessageBytes(shape: [Int]) -> Int? { inner.fixedMessageBytes(shape: shape) }
        func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey) throws -> [UInt8] {
            var message = try inner.encode(values, shape: shape, key: key)
            if key.rank == 1 { message.removeLast() }
            return message
        }
        func decode(_ message: UnsafeRawBufferPointer, shape: [Int], key: CompressionKey, weight: Float,
                    accumulatingInto output: UnsafeMutableBufferPointer<Float>) throws {
            try inner.decode(message, shape: shape, key: key, weight: weight, accumulatingInto: output)
        }
    }

    /// A frame one byte short from worker 1 makes `AllGatherReducer.reduce` throw
    /// `.corruptMessage` naming worker 1 on every worker (not a crash, a hang or another error),
    /// for a fixed-size message (Top-K) and a length-prefixed one (QSGD's Elias stream).
    @Test func corruptFramesFromAPeerThrowOnEveryWorker() throws {
        let compressors: [any Compressor] = [try TopK(ratio: 0.5), try QSGD(levels: 4, bucketSize: 4, format: .elias)]
        for c in compressors {
            let outcomes = try InProcessGroup.run(workers: 3) { group -> String in
                func run(_ c: some Compressor) throws -> String {
                    var reducer = AllGatherReducer(TruncatingOnRank1(inner: c))
                    var g = [normalTensor([10], seed: UInt64(group.rank))]
                    do {
                        _ = try reducer.reduce(&g, over: group)
                        return "no error"
                    } catch let GradientCompressionError.corruptMessage(text) {
                        return text.contains("worker 1") ? "corrupt frame of worker 1" : "corrupt: \(text)"
                    }
                }
                return try run(c)
            }
            #expect(outcomes == Array(repeating: "corrupt frame of worker 1", count: 3), "\(c.name): \(outcomes)")
        }
    }
}

func square(_ x: Double) -> Double { x * x }

@Suite struct GlobalScopeTests {
    @Test func globalTopKSelectsTheLargestAcrossTensors() throws {
        // Tensor 0 holds small values, tensor 1 large ones: global Top-K (k = 4 of 12) takes only from tensor 1.
        let a = try Tensor(shape: [2, 3], scalars: [0.1, -0.2, 0.3, 0.05, 0.01, -0.15])
        let b = try Tensor(shape: [6], scalars: [5, -6, 0.5, 7, -8, 0.2])
        let results = try InProcessGroup.run(workers: 2) { group -> [Tensor] in
            var reducer = AllGatherReducer(try TopK(ratio: 1.0 / 3), scope: .global)
            var g = [a, b]
            _ = try reducer.reduce(&g, over: group)
            return g
        }
        for g in results {
            #expect(g[0] == Tensor(shape: [2, 3]))
            #expect(g[1].scalars == [5, -6, 0, 7, -8, 0])
        }
    }
}

@Suite struct ElementwiseCatalogTests {
    static func make(_ text: String) throws -> any GradientReducer {
        try ReducerCatalog.make(ReducerSpecification(parsing: text), seed: 0)
    }

    @Test func buildsNamedReducersWithOptionsAndRejectsUnknownOptions() throws {
        #expect(try Self.make("qsgd:levels=16,bucket=128,format=fixed").name == "qsgd(levels=16,bucket=128,norm=l2,format=fixed)")
        #expect(try Self.make("topk:ratio=0.1,scope=global").name == "topk(ratio=0.1,selection=exact,scope=global,feedback=ef)")
        #expect(try Self.make("onebit:feedback=none").name == "onebit(feedback=none)")
        #expect(try Self.make("signum").name == "signum(momentum=0.9)")
        #expect(throws: GradientCompressionError.self) { _ = try Self.make("qsgd:level=4") }
        #expect(throws: GradientCompressionError.self) { _ = try Self.make("randomk:unbiased=true,feedback=ef") }
    }
}
