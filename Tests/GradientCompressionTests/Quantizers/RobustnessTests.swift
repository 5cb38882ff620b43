import Collectives
import Testing
import LinearAlgebra
@testable import GradientCompression
import TestSupport

/// Every decoder, fed 10,000 randomly mutated, truncated and extended messages, either throws
/// `GradientCompressionError.corruptMessage` or decodes finite values; it never traps (a trap
/// would kill the test process) and never reads out of bounds (run the suite with
/// `--sanitize=address` to check the latter: see docs/compressors.md). A decode that throws
/// leaves its output bit for bit as it was ("decodes or throws": the output already holds other
/// workers' contributions).
@Suite struct RobustnessTests {
    /// Variants beyond each catalog entry's defaults: the other QSGD coder, options that make
    /// messages longer.
    static let variants = ["qsgd:bucket=32", "qsgd:levels=5,bucket=16,norm=max,format=fixed", "topk:ratio=0.1", "atomo:budget=3"]

    /// The compressor behind every catalog reducer that exchanges one element-wise compressor's
    /// messages (with its defaults and with `variants`), by specification: a new method is
    /// fuzzed once it is in the catalog.
    static let compressors: [(specification: String, compressor: any Compressor)] = {
        (ReducerCatalog.entries.map(\.name) + variants).compactMap { text in
            let reducer = try! ReducerCatalog.make(ReducerSpecification(parsing: text), seed: 0)
            return (reducer as? any CompressorBacked).map { (text, $0.backingCompressor) }
        }
    }()

    @Test func everyCompressorBackedEntryIsFuzzed() {
        let fuzzed = Set(Self.compressors.map { $0.specification })
        for name in ["qsgd", "terngrad", "atomo", "onebit", "signsgd", "scaled-sign", "topk", "fp16", "bf16"] {
            #expect(fuzzed.contains(name), "\(name)")
        }
    }

    @Test(arguments: compressors.indices)
    func decoderSurvivesMutatedMessages(index: Int) throws {
        try check(Self.compressors[index].compressor)
    }

    func check(_ c: some Compressor) throws {
        let t = normalTensor([12, 10], seed: 3)
        let key = CompressionKey(rank: 0, step: 0, tensor: 0)
        let message = try c.encode(t, key: key)
        // The output holds earlier contributions (nonzero, so that an added zero is seen too: −0 + 0 = +0).
        let earlier = normalTensor(t.shape, seed: 23).scalars
        var thrown = 0, decoded = 0, nonFinite = 0, changedByAThrow = 0
        for m in mutations(of: message, count: 10_000, seed: 17) {
            var out = earlier
            do {
                try m.withUnsafeBytes { bytes in
                    try out.withUnsafeMutableBufferPointer {
                        try c.decode(bytes, shape: t.shape, key: key, weight: 0.5, accumulatingInto: $0)
                    }
                }
                if !out.allSatisfy(\.isFinite) { nonFinite += 1 }
                decoded += 1
            } catch is GradientCompressionError {
                if !zip(out, earlier).allSatisfy({ $0.bitPattern == $1.bitPattern }) { changedByAThrow += 1 }
                thrown += 1
            }
        }
        #expect(thrown + decoded == 10_000)
        #expect(nonFinite == 0, "\(c.name) decoded a non-finite value \(nonFinite) times")
        #expect(changedByAThrow == 0, "\(c.name): \(changedByAThrow) of \(thrown) throwing decodes changed the output")
        #expect(thrown > 0, "\(c.name): no mutation was detected at all")
    }
}

/// The input policy of docs/compressors.md, for every compressor: NaN or ±Inf anywhere in the
/// input throws `CompressorError.nonFiniteInput`; an all-zero tensor decodes to zeros (the plain
/// sign, whose zero rule sends +1, decodes to +1).
@Suite struct InputPolicyTests {
    @Test(arguments: RobustnessTests.compressors.indices)
    func nonFiniteInputThrowsAndZeroDecodesToZero(index: Int) throws {
        try check(RobustnessTests.compressors[index].compressor)
    }

    func check(_ c: some Compressor) throws {
        let key = CompressionKey(rank: 0, step: 0, tensor: 0)
        for bad in [Float.nan, .infinity, -.infinity] {
            for position in [0, 57, 119] {
                var t = normalTensor([12, 10], seed: 1)
                t.scalars[position] = bad
                #expect(throws: CompressorError.self, "\(c.name) accepted \(bad) at \(position)") { _ = try c.encode(t, key: key) }
            }
        }
        let zero = Tensor(shape: [12, 10])
        let decoded = try c.decode(try c.encode(zero, key: key), shape: zero.shape, key: key)
        let expected: Float = (c as? SignCompressor)?.scaling == SignCompressor.Scaling.none ? 1 : 0
        #expect(decoded.scalars.allSatisfy { $0 == expected }, "\(c.name)")
    }

    /// LQ-SGD follows the same policy: NaN or ±Inf anywhere in a compressed gradient (on the
    /// first step and on a warm-started one) throws `nonFiniteInput` naming the method and the
    /// tensor, instead of trapping on NaN or sending zeros for ±Inf; zero gradients give zeros.
    @Test func lqsgdFollowsTheInputPolicy() throws {
        let shapes: [[Int]] = [[7], [24, 40]]
        for bad in [Float.nan, .infinity, -.infinity] {
            for position in [0, 517, 959] {
                for goodSteps in [0, 2] {
                    let outcome = try InProcessGroup.run(workers: 1) { group -> String in
                        var reducer = try LQSGD(rank: 2, bits: 4)
                        for step in 0..<goodSteps {
                            var g = LowRankFixtures.gradients(shapes, rank: 0, step: step)
                            _ = try reducer.reduce(&g, over: group)
                        }
                        var g = LowRankFixtures.gradients(shapes, rank: 0, step: goodSteps)
                        g[1].scalars[position] = bad
                        do {
                            _ = try reducer.reduce(&g, over: group)
                            return "no error; output finite: \(g[1].scalars.allSatisfy(\.isFinite))"
                        } catch let CompressorError.nonFiniteInput(method, tensor, _) {
                            return "\(method) \(tensor)"
                        }
                    }[0]
                    #expect(outcome == "lqsgd 1", "\(bad) at \(position) after \(goodSteps) steps")
                }
            }
        }
        let zeros = try InProcessGroup.run(workers: 1) { group -> [Tensor] in
            var reducer = try LQSGD(rank: 2, bits: 4)
            var g = shapes.map { Tensor(shape: $0) }
            for _ in 0..<2 { _ = try reducer.reduce(&g, over: group) }
            return g
        }[0]
        #expect(zeros == shapes.map { Tensor(shape: $0) })
    }

    @Test func randomKChecksTheValuesItSends() throws {
        let c = try RandomK(ratio: 1)
        var t = normalTensor([10], seed: 1)
        t.scalars[4] = .nan
        var out = [Float](repeating: 0, count: 10)
        #expect(throws: CompressorError.self) {
            try t.withUnsafeBufferPointer { v in try out.withUnsafeMutableBufferPointer { try c.encode(v, shape: [10], key: .init(rank: 0, step: 0, tensor: 0), into: $0) } }
        }
    }
}
