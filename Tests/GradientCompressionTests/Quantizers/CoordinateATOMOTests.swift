import Collectives
import LinearAlgebra
import Testing
import TestSupport
@testable import GradientCompression

/// Coordinate-wise ATOMO: unbiased, with the variance-minimizing probabilities of spectral ATOMO
/// applied to |vᵢ|, and messages of 4 + 8c bytes.
@Suite struct CoordinateATOMOTests {
    /// A vector with a few dominant coordinates (kept surely), many small ones and zeros.
    static func vector() -> Tensor {
        var t = normalTensor([80], seed: 12)
        t.scalars[3] = 30; t.scalars[40] = -25
        for i in stride(from: 5, to: 80, by: 9) { t.scalars[i] = 0 }
        return t
    }

    /// The mean of 4000 decodings lies within 5 standard errors of v in every coordinate, the
    /// standard error being the closed form √(vᵢ²(1/pᵢ − 1)/T) of Bernoulli(pᵢ)·vᵢ/pᵢ; the
    /// measured variances match that closed form within 5 of their own relative standard errors
    /// (≈ √((1 − pᵢ)/(pᵢT)) for a scaled Bernoulli); the mean count is s; every message is 4 + 8c bytes.
    @Test func isUnbiasedWithTheClosedFormVarianceAndFormulaSize() throws {
        let t = Self.vector()
        let c = try CoordinateATOMO(density: 0.1, seed: 5)
        let p = t.withUnsafeBufferPointer { c.probabilities($0) }
        #expect(abs(p.reduce(0, +) - 8) < 1e-9, "Σp = s = 0.1·80")
        #expect(p[3] == 1 && p[40] == 1, "the dominant coordinates are kept surely")
        for i in stride(from: 5, to: 80, by: 9) { #expect(p[i] == 0) }
        let trials = 4000
        var meanCount = 0.0
        let m = try decodedMoments(trials, t) { step in
            let key = CompressionKey(rank: 0, step: step, tensor: 0)
            let bytes = try c.encode(t, key: key)
            let count = Int(bytes[0]) | Int(bytes[1]) << 8
            #expect(bytes.count == 4 + 8 * count)
            meanCount += Double(count) / Double(trials)
            return try c.decode(bytes, shape: t.shape, key: key)
        }
        for i in 0..<t.count {
            let v = Double(t.scalars[i])
            let variance = p[i] > 0 ? v * v * (1 / p[i] - 1) : 0
            let standardError = (variance / Double(trials)).squareRoot()
            #expect(abs(m.mean[i] - v) <= 5 * standardError + 1e-5 * max(1, abs(v)), "coordinate \(i): mean \(m.mean[i]) vs \(v)")
            if variance > 0 {
                let tolerance = 5 * ((1 - p[i]) / (p[i] * Double(trials))).squareRoot() + 0.02
                #expect(abs(m.variance[i] / variance - 1) < tolerance, "coordinate \(i): variance \(m.variance[i]) vs \(variance)")
            }
        }
        // The count is a sum of independent Bernoullis with Σ p(1−p) ≤ 2: its mean of 4000 is within 0.12 of s.
        #expect(abs(meanCount - 8) < 0.12)
    }

    /// At density 1 every non-zero coordinate is kept with p = 1: the message is exact.
    @Test func fullDensityIsExactAndBadInputIsRefused() throws {
        let t = Self.vector()
        let (bytes, decoded) = try roundTrip(try CoordinateATOMO(density: 1), t)
        #expect(decoded == t)
        #expect(bytes.count == 4 + 8 * t.scalars.filter { $0 != 0 }.count)
        #expect(throws: GradientCompressionError.self) { try CoordinateATOMO(density: 0) }
        #expect(throws: GradientCompressionError.self) { try CoordinateATOMO(density: 1.5) }
        var bad = t
        bad.scalars[7] = .nan
        #expect(throws: CompressorError.self) { _ = try CoordinateATOMO(density: 0.5).encode(bad, key: .init(rank: 0, step: 0, tensor: 0)) }
        // Indices out of order are a corrupt message, not a silent overwrite.
        var message: [UInt8] = []
        message.appendLittleEndian(UInt32(2))
        for index in [UInt32(5), 5] { message.appendLittleEndian(index); message.appendLittleEndian(Float(1).bitPattern) }
        #expect(throws: GradientCompressionError.self) { _ = try CoordinateATOMO(density: 0.5).decode(message, shape: [80], key: .init(rank: 0, step: 0, tensor: 0)) }
    }

    /// Through the catalog: each worker's payload is its messages (4 + 8c bytes per tensor) with
    /// the all-gather frame's 4-byte length per tensor, and every worker gets the same result.
    @Test func reducerSendsTheMessagesBytes() throws {
        let shapes: [[Int]] = [[30, 20], [17]]
        let results = try InProcessGroup.run(workers: 2) { group -> (ReductionStats, [Tensor], [Int]) in
            var reducer = try ReducerCatalog.make(ReducerSpecification(parsing: "atomo-coordinates:density=0.05,seed=2"), seed: 0)
            var g = shapes.indices.map { normalTensor(shapes[$0], seed: UInt64(group.rank), stream: UInt64($0)) }
            let compressor = try CoordinateATOMO(density: 0.05, seed: 2)
            let sizes = try g.indices.map { try compressor.encode(g[$0], key: .init(rank: group.rank, step: 0, tensor: $0)).count }
            let stats = try reducer.reduce(&g, over: group)
            return (stats, g, sizes)
        }
        #expect(results[0].1 == results[1].1)
        for (stats, _, sizes) in results {
            #expect(stats.payloadBytes == sizes.reduce(0, +) + 4 * shapes.count)
            #expect(sizes.reduce(0, +) > 8 && stats.payloadBytes < 4 * (600 + 17) / 4, "a few coordinates of the dense tensors")
        }
    }
}
