import Testing
import Collectives
import LinearAlgebra
@testable import GradientCompression
import TestSupport

/// fp16 / bf16 through `AllReduceReducer` (the catalog's `fp16` / `bf16` methods): the average is
/// each worker's value rounded to the format, accumulated in fp32 in rank order, × 1/W, rounded
/// once; identical on every worker; 2 bytes per element on the wire, ring all-reduce counts.
@Suite struct HalfPrecisionAllReduceTests {
    static let elements = 37  // ElementwiseReducerTests.gradients: [6, 5] and [7]

    /// The documented result for worker inputs `all[rank][tensor]`.
    static func reference(_ all: [[Tensor]], format: HalfWidthFormat) -> [[Float]] {
        let w = all.count
        return all[0].indices.map { t in
            (0 ..< all[0][t].count).map { j in
                var acc: Float = 0
                for r in 0 ..< w { acc += format.float(format.bits(all[r][t].scalars[j])) }
                return format.float(format.bits(acc * (1 / Float(w))))
            }
        }
    }

    @Test(arguments: [HalfPrecisionCompressor.Format.fp16, .bf16], [1, 2, 3, 4])
    func averageIsTheFp32SumRoundedOnceAndTrafficIsRingAllReduce(format: HalfPrecisionCompressor.Format, workers: Int) throws {
        let compressor = HalfPrecisionCompressor(format)
        let results = try InProcessGroup.run(workers: workers) { group -> ([Tensor], ReductionStats) in
            var reducer = AllReduceReducer(compressor)
            var g = ElementwiseReducerTests.gradients(rank: group.rank)
            let stats = try reducer.reduce(&g, over: group)
            return (g, stats)
        }
        let inputs = (0 ..< workers).map(ElementwiseReducerTests.gradients)
        let expected = Self.reference(inputs, format: compressor.coefficientFormat!)
        let payload = 2 * Self.elements
        let ring = workers == 1 ? 0 : 2 * (payload - payload / workers)
        for (g, stats) in results {
            #expect(g.map(\.scalars) == expected)
            // One all-reduce of 2 bytes per element; what a worker sends is < 2 · payload for every W.
            #expect(stats.collectives.map(\.kind) == [.allReduce])
            #expect(stats.payloadBytes == payload)
            #expect(stats.bytesSent == ring && stats.bytesReceived == ring)
            #expect(stats.uncompressedBytes == 4 * Self.elements)
        }
    }

    /// `reduce` rounds the gradients straight into 16-bit patterns and widens the average back in
    /// place; `exchange` (the error-feedback path) goes through fp32 coefficients. Same bits.
    @Test(arguments: [HalfPrecisionCompressor.Format.fp16, .bf16])
    func inPlaceReduceEqualsTheExchangePath(format: HalfPrecisionCompressor.Format) throws {
        let shapes = [[40, 25], [1], [333]]
        func gradients(_ rank: Int) -> [Tensor] {
            shapes.enumerated().map { Philox(seed: 8, stream: UInt64(10 * rank + $0.offset)).normalTensor(shape: $0.element, standardDeviation: 3) }
        }
        let results = try InProcessGroup.run(workers: 3) { group -> ([[Float]], [[Float]]) in
            var reducer = AllReduceReducer(HalfPrecisionCompressor(format))
            var g = gradients(group.rank)
            let viaExchange = try reducer.exchange(g, step: 0, over: group, wantLocal: false).average.map(\.scalars)
            _ = try reducer.reduce(&g, over: group)
            return (g.map(\.scalars), viaExchange)
        }
        for (inPlace, viaExchange) in results {
            #expect(inPlace.map { $0.map(\.bitPattern) } == viaExchange.map { $0.map(\.bitPattern) })
        }
        #expect(results.allSatisfy { $0.0 == results[0].0 })
    }

    /// The catalog's `fp16` / `bf16` reducers are this all-reduce (not an all-gather).
    @Test(arguments: ["fp16", "bf16"])
    func catalogMethodsAllReduce(name: String) throws {
        let results = try InProcessGroup.run(workers: 3) { group -> ReductionStats in
            var reducer = try ReducerCatalog.make(ReducerSpecification(name: name), seed: 0)
            var g = ElementwiseReducerTests.gradients(rank: group.rank)
            return try reducer.reduce(&g, over: group)
        }
        for stats in results {
            #expect(stats.collectives.map(\.kind) == [.allReduce])
            #expect(stats.bytesSent == 2 * (74 - 74 / 3))
        }
    }

    /// What error feedback needs: this worker's own decoded message is its values rounded to the
    /// format (so the EF residual is exactly what rounding lost).
    @Test func localMessageIsTheRoundedInput() throws {
        let results = try InProcessGroup.run(workers: 2) { group -> [[Float]] in
            let inner = AllReduceReducer(HalfPrecisionCompressor(.bf16))
            let g = ElementwiseReducerTests.gradients(rank: group.rank)
            let exchange = try inner.exchange(g, step: 0, over: group, wantLocal: true)
            return exchange.local!.map(\.scalars)
        }
        for rank in 0 ..< 2 {
            let g = ElementwiseReducerTests.gradients(rank: rank)
            #expect(results[rank] == g.map { $0.scalars.map { HalfWidthFormat.bfloat16.float(HalfWidthFormat.bfloat16.bits($0)) } })
        }
    }

    @Test func nonFiniteOrOverflowingInputThrowsNamingTheTensor() throws {
        let bad = [try Tensor(shape: [2], scalars: [1, 70_000])]
        #expect(throws: WorkerError.self) {
            _ = try InProcessGroup.run(workers: 2) { group -> Int in
                var reducer = AllReduceReducer(HalfPrecisionCompressor(.fp16))
                var g = group.rank == 0 ? bad : [try Tensor(shape: [2], scalars: [1, 2])]
                _ = try reducer.reduce(&g, over: group)
                return 0
            }
        }
        var values: [Float] = [0]
        let c = HalfPrecisionCompressor(.fp16)
        #expect(throws: CompressorError.nonFiniteInput(method: "fp16", tensor: 4,
                                                       detail: "it holds NaN/Inf or a value beyond fp16's range (|x| ≥ 65520)")) {
            try [Float(70_000)].withUnsafeBufferPointer { v in
                try values.withUnsafeMutableBufferPointer {
                    try c.encode(v, shape: [1], key: CompressionKey(rank: 0, step: 0, tensor: 4), into: $0)
                }
            }
        }
    }
}
