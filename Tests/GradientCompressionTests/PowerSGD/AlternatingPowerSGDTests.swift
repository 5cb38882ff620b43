import Collectives
import LinearAlgebra
import Testing
@testable import GradientCompression
import TestSupport

/// `powersgd:alternate=true`: one all-reduce per step, alternating Q-halves and P-halves
/// (`PowerSGD+Alternating.swift`).
@Suite struct AlternatingPowerSGDTests {
    let shapes: [[Int]] = [[20, 30], [16, 3, 3, 3], [10], [24, 40], [5, 4]]

    func options(_ feedback: PowerSGD.ErrorFeedback = .local, rank: Int = 2) -> PowerSGD.Options {
        var o = PowerSGD.Options(rank: rank, errorFeedback: feedback, seed: 5)
        o.alternate = true
        return o
    }

    /// One collective a step, carrying the uncompressed floats and one factor: Q (Σ r·m) on
    /// even steps, P (Σ r·n) on odd ones.
    @Test func oneCollectivePerStepWithTheFormulaBytes() throws {
        let stats = try InProcessGroup.run(workers: 2) { group -> [ReductionStats] in
            var reducer = try PowerSGD(options())
            return try (0..<5).map { step in
                var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: step)
                return try reducer.reduce(&g, over: group)
            }
        }[0]
        let layout = try PowerSGD(options()).layout(for: shapes)
        let compressed = layout.entries.filter(\.isCompressed)
        #expect(compressed.count == 3 && layout.uncompressedCount == 10 + 20)
        let qFloats = compressed.reduce(0) { $0 + $1.columns * $1.rank }
        let pFloats = compressed.reduce(0) { $0 + $1.rows * $1.rank }
        // Step 0 also runs the one-time shape agreement (an all-gather); count from step 1.
        for (step, s) in stats.enumerated().dropFirst() {
            #expect(s.collectives.count == 1, "step \(step): \(s.collectives.count) collectives")
            let factor = step % 2 == 0 ? qFloats : pFloats
            #expect(s.payloadBytes == 4 * (layout.uncompressedCount + factor), "step \(step)")
        }
    }

    /// Linearity: W workers give single-worker alternating PowerSGD of the mean gradient, with
    /// and without error feedback (the mean of the workers' memories is the single memory).
    @Test(arguments: [PowerSGD.ErrorFeedback.off, .local, .global])
    func fourWorkersEqualOneWorkerOnTheMeanGradient(feedback: PowerSGD.ErrorFeedback) throws {
        let steps = 5, o = options(feedback)
        let distributed = try InProcessGroup.run(workers: 4) { group -> [[Tensor]] in
            var reducer = try PowerSGD(o)
            return try (0..<steps).map { step in
                var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: step)
                _ = try reducer.reduce(&g, over: group)
                return g
            }
        }
        let single = try InProcessGroup.run(workers: 1) { group -> [[Tensor]] in
            var reducer = try PowerSGD(o)
            return try (0..<steps).map { step in
                var g = LowRankFixtures.mean((0..<4).map { LowRankFixtures.gradients(shapes, rank: $0, step: step) })
                _ = try reducer.reduce(&g, over: group)
                return g
            }
        }[0]
        for step in 0..<steps {
            for rank in 1..<4 { #expect(distributed[rank][step] == distributed[0][step], "workers agree bit for bit") }
            let difference = relativeDifference(distributed[0][step], single[step])
            #expect(difference < 1e-4, "\(feedback) step \(step): relative difference \(difference)")
            #expect(LowRankFixtures.norm(distributed[0][step][0]) > 0)
        }
    }

    /// A fixed matrix of rank r: the Q-half of step 0 finds its row space (Q̄ = GᵀP̂ has rank r),
    /// so from the P-half of step 1 on, G·Q̂Q̂ᵀ (then P̂P̂ᵀG) reproduces it exactly.
    @Test func exactlyRankRMatrixIsReconstructedFromTheSecondStep() throws {
        let m = try LowRankFixtures.matrix(rows: 40, columns: 60, singularValues: [5, 2], seed: 3)
        let outputs = try InProcessGroup.run(workers: 1) { group -> [Tensor] in
            var reducer = try PowerSGD(options(.off))
            return try (0..<4).map { _ in var g = [m]; _ = try reducer.reduce(&g, over: group); return g[0] }
        }[0]
        #expect(relativeDifference([outputs[0]], [m]) > 1e-3, "a random start basis does not already span it")
        for step in 1..<4 {
            let difference = relativeDifference([outputs[step]], [m])
            #expect(difference < 1e-4, "step \(step): relative error \(difference)")
        }
    }

    /// Error feedback loses nothing: Σ_t output_t + mean_w E_w = Σ_t mean_w G_w,t, for both variants.
    @Test(arguments: [PowerSGD.ErrorFeedback.local, .global])
    func errorFeedbackConservesMass(feedback: PowerSGD.ErrorFeedback) throws {
        let steps = 5, workers = 3
        let results = try InProcessGroup.run(workers: workers) { group -> ([Tensor], [Float], MatrixLayout) in
            var reducer = try PowerSGD(options(feedback, rank: 1))
            var applied = shapes.map { Tensor(shape: $0) }
            for step in 0..<steps {
                var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: step)
                _ = try reducer.reduce(&g, over: group)
                for i in applied.indices { for j in applied[i].scalars.indices { applied[i].scalars[j] += g[i].scalars[j] } }
            }
            return (applied, reducer.errorMemory, reducer.layout!)
        }
        var lhs = results[0].0
        for (index, entry) in results[0].2.entries.enumerated() where entry.isCompressed {
            for j in 0..<entry.count {
                lhs[index].scalars[j] += results.reduce(Float(0)) { $0 + $1.1[entry.errorOffset + j] } / Float(workers)
            }
        }
        var rhs = shapes.map { Tensor(shape: $0) }
        for step in 0..<steps {
            let mean = LowRankFixtures.mean((0..<workers).map { LowRankFixtures.gradients(shapes, rank: $0, step: step) })
            for i in rhs.indices { for j in rhs[i].scalars.indices { rhs[i].scalars[j] += mean[i].scalars[j] } }
        }
        let difference = relativeDifference(lhs, rhs)
        #expect(difference < 1e-5, "\(feedback): relative difference \(difference)")
        #expect(results.allSatisfy { $0.1.contains { $0 != 0 } }, "rank 1 leaves a residual")
    }

    /// A checkpoint after an odd number of steps (next: a P-half, which needs the saved Q̄) and
    /// after an even number (next: a Q-half, which needs the saved P̄) continues bit for bit.
    @Test(arguments: [3, 4])
    func checkpointRoundTripContinuesBitForBit(stepsBefore: Int) throws {
        let o = options()
        let results = try InProcessGroup.run(workers: 2) { group -> ([[Tensor]], [[Tensor]]) in
            var reducer = try PowerSGD(o)
            for step in 0..<stepsBefore {
                var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: step)
                _ = try reducer.reduce(&g, over: group)
            }
            var writer = StateWriter()
            reducer.saveState(to: &writer)
            func continueRun(_ r: inout PowerSGD) throws -> [[Tensor]] {
                try (stepsBefore..<stepsBefore + 3).map { step in
                    var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: step)
                    _ = try r.reduce(&g, over: group)
                    return g
                }
            }
            let original = try continueRun(&reducer)
            var restored = try PowerSGD(o)
            var reader = StateReader(writer.bytes)
            try restored.restoreState(from: &reader)
            #expect(reader.isAtEnd)
            return (original, try continueRun(&restored))
        }
        for (original, restored) in results { #expect(original == restored) }
    }

    @Test func specificationAndContradictions() throws {
        let reducer = try ReducerCatalog.make(ReducerSpecification(parsing: "powersgd:rank=2,alternate=true"), seed: 0)
        #expect(reducer.name == "powersgd(rank=2,alternate=true)")
        #expect((reducer as? PowerSGD)?.options.alternate == true)
        for bad in ["powersgd:alternate=true,warm-start=false", "powersgd:alternate=true,power-iterations=2"] {
            #expect(throws: GradientCompressionError.self, "\(bad)") {
                try ReducerCatalog.make(ReducerSpecification(parsing: bad), seed: 0)
            }
        }
        #expect(throws: GradientCompressionError.self, "lgreco has no alternate step") {
            try ReducerCatalog.make(ReducerSpecification(parsing: "lgreco:alternate=true"), seed: 0)
        }
    }
}
