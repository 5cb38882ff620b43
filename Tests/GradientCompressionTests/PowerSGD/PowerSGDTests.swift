import Collectives
import Foundation
import LinearAlgebra
import Testing
@testable import GradientCompression
import TestSupport

@Suite struct PowerSGDTests {
    let smallShapes: [[Int]] = [[20, 30], [16, 3, 3, 3], [10], [24, 40], [5, 4]]

    /// The paper's linearity claim (§1.3): with error feedback off and the same Q, W workers
    /// produce exactly single-worker PowerSGD of the mean gradient, up to float rounding.
    @Test func fourWorkersEqualOneWorkerOnTheMeanGradient() throws {
        let options = PowerSGD.Options(rank: 2, errorFeedback: .off)
        let shapes = smallShapes
        let steps = 3
        let distributed = try InProcessGroup.run(workers: 4) { group -> [[Tensor]] in
            var reducer = try PowerSGD(options)
            return try (0..<steps).map { step in
                var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: step)
                _ = try reducer.reduce(&g, over: group)
                return g
            }
        }
        let single = try InProcessGroup.run(workers: 1) { group -> [[Tensor]] in
            var reducer = try PowerSGD(options)
            return try (0..<steps).map { step in
                var g = LowRankFixtures.mean((0..<4).map { LowRankFixtures.gradients(shapes, rank: $0, step: step) })
                _ = try reducer.reduce(&g, over: group)
                return g
            }
        }[0]
        for step in 0..<steps {
            for rank in 0..<4 { #expect(distributed[rank][step] == distributed[0][step], "workers agree bit for bit") }
            let difference = relativeDifference(distributed[0][step], single[step])
            #expect(difference < 1e-5, "step \(step): relative difference \(difference)")
        }
    }

    /// A matrix of rank exactly r is in the span after one power step; warm-started steps keep it.
    @Test func exactlyRankRMatrixIsReconstructed() throws {
        let m = try LowRankFixtures.matrix(rows: 40, columns: 60, singularValues: [5, 2], seed: 3)
        let out = try InProcessGroup.run(workers: 1) { group -> [Tensor] in
            var reducer = try PowerSGD(PowerSGD.Options(rank: 2, errorFeedback: .off))
            var last = m
            for _ in 0..<3 { var g = [m]; _ = try reducer.reduce(&g, over: group); last = g[0] }
            return [last]
        }[0]
        let difference = relativeDifference(out, [m])
        #expect(difference < 1e-4, "relative error \(difference)")
    }

    /// Warm-started steps on a fixed matrix are subspace iteration: the error approaches the
    /// SVD optimum (σ decays by 0.7 per index, so convergence is geometric in (σ₃/σ₂)²).
    @Test func errorApproachesTheSVDOptimum() throws {
        let sigma = (0..<30).map { Float(pow(0.7, Double($0))) }
        let m = try LowRankFixtures.matrix(rows: 30, columns: 50, singularValues: sigma, seed: 5)
        let optimum = try LowRankFixtures.optimalError(m, rank: 2)
        let errors = try InProcessGroup.run(workers: 1) { group -> [Double] in
            var reducer = try PowerSGD(PowerSGD.Options(rank: 2, errorFeedback: .off))
            return try (0..<25).map { _ in
                var g = [m]
                _ = try reducer.reduce(&g, over: group)
                return relativeDifference(g, [m]) * LowRankFixtures.norm(m)
            }
        }[0]
        #expect(errors[0] > 1.05 * optimum, "the first step is not yet optimal: \(errors[0]) vs \(optimum)")
        #expect(errors[24] < 1.01 * optimum, "after 25 steps \(errors[24]) vs optimum \(optimum)")
        #expect(errors[24] >= optimum * 0.999, "no approximation beats Eckart–Young")
    }

    /// Σ_t applied + mean_w e_w(T) = Σ_t mean_w g_w^t (§1.5): both variants conserve mass. And
    /// every step's output is what PowerSGD computes: P̂P̂ᵀM̄, the mean error-corrected input
    /// M̄ = mean_w(G_w + E_w) projected on the output's own column space (computed here from the
    /// inputs and the memories before the step), so a reducer that sent zeros, or the input
    /// unchanged, would fail.
    @Test(arguments: [PowerSGD.ErrorFeedback.local, .global])
    func errorFeedbackConservesMass(variant: PowerSGD.ErrorFeedback) throws {
        let shapes = smallShapes, steps = 5, workers = 4
        let results = try InProcessGroup.run(workers: workers) { group -> ([Tensor], [Float], MatrixLayout, [[Tensor]], [[Float]]) in
            var reducer = try PowerSGD(PowerSGD.Options(rank: 1, errorFeedback: variant))
            var applied = shapes.map { Tensor(shape: $0) }
            var outputs: [[Tensor]] = [], memories: [[Float]] = []
            for step in 0..<steps {
                memories.append(reducer.errorMemory)
                var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: step)
                _ = try reducer.reduce(&g, over: group)
                outputs.append(g)
                for i in applied.indices { for j in applied[i].scalars.indices { applied[i].scalars[j] += g[i].scalars[j] } }
            }
            return (applied, reducer.errorMemory, reducer.layout!, outputs, memories)
        }
        let layout = results[0].2
        var lhs = results[0].0
        for (index, entry) in layout.entries.enumerated() where entry.isCompressed {
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
        #expect(difference < 1e-5, "\(variant): relative difference \(difference)")
        #expect(results.allSatisfy { $0.1.allSatisfy { $0.isFinite } })
        for step in 0..<steps {
            for (index, entry) in layout.entries.enumerated() where entry.isCompressed {
                var corrected = (0..<workers).map { LowRankFixtures.gradients(shapes, rank: $0, step: step)[index] }
                for w in 0..<workers where !results[w].4[step].isEmpty {
                    for j in 0..<entry.count { corrected[w].scalars[j] += results[w].4[step][entry.errorOffset + j] }
                }
                let meanInput = try LowRankFixtures.mean(corrected.map { [$0] })[0].reshaped(to: [entry.rows, entry.columns])
                let output = try results[0].3[step][index].reshaped(to: [entry.rows, entry.columns])
                let basis = try LowRankFixtures.columnBasis(of: output, rank: entry.rank)
                let expected = LowRankFixtures.project(meanInput, onto: basis, rank: entry.rank)
                let error = LowRankFixtures.norm(zip(output.scalars, expected).map { Double($0) - $1 }) / LowRankFixtures.norm(expected)
                #expect(error < 1e-4, "\(variant) step \(step) tensor \(index): output differs from P̂P̂ᵀM̄ by \(error)")
            }
        }
    }

    /// Variant B keeps every worker's memory at its own projection error (§1.5): with the output's
    /// column basis P̂, e_w = M_w − P̂P̂ᵀM_w (computed here from the input; M_w = G_w on the first
    /// step), so P̂ᵀe_w = 0. A memory of 0 or of M_w, or variant A's M_w − P̂Q̄ᵀ, fails.
    @Test func localResidualIsTheWorkersOwnProjectionError() throws {
        let shapes: [[Int]] = [[24, 40]]
        let results = try InProcessGroup.run(workers: 2) { group -> (Tensor, [Float], Tensor) in
            var reducer = try PowerSGD(PowerSGD.Options(rank: 2, errorFeedback: .local))
            var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: 0)
            let input = g[0]
            _ = try reducer.reduce(&g, over: group)
            return (input, reducer.errorMemory, g[0])
        }
        for (input, error, output) in results {
            let basis = try LowRankFixtures.columnBasis(of: output, rank: 2)
            let orthogonality = LowRankFixtures.transposedProduct(basis, rank: 2, error, columns: 40)
            #expect(LowRankFixtures.norm(orthogonality) < 1e-5 * LowRankFixtures.norm(input), "P̂ᵀe_w = \(LowRankFixtures.norm(orthogonality))")
            let projection = LowRankFixtures.project(input, onto: basis, rank: 2)
            let expected = zip(input.scalars, projection).map { Double($0) - $1 }
            let difference = LowRankFixtures.norm(zip(error, expected).map { Double($0) - $1 })
            #expect(difference < 1e-5 * LowRankFixtures.norm(input), "‖e_w − (M_w − P̂P̂ᵀM_w)‖ = \(difference)")
        }
    }

    /// Measured payload on ResNet-18 gives the paper's and PyTorch's ratios exactly:
    /// 243.26 / 135.84 / 72.13 at ranks 1, 2, 4, with 3 collectives per step.
    @Test(arguments: [(1, 45_935, 243.26), (2, 82_260, 135.84), (4, 154_910, 72.13)])
    func resnet18CompressionRatios(rank: Int, floats: Int, torchRatio: Double) throws {
        let shapes = ModelShapes.resnet18()
        #expect(shapes.count == 62)
        #expect(shapes.reduce(0) { $0 + Tensor.elementCount($1) } == 11_173_962)
        let stats = try InProcessGroup.run(workers: 2) { group -> ReductionStats in
            var reducer = try PowerSGD(PowerSGD.Options(rank: rank))
            var g = shapes.map { Tensor(shape: $0, repeating: Float(group.rank + 1)) }
            _ = try reducer.reduce(&g, over: group)
            g = shapes.map { Tensor(shape: $0, repeating: 0.5) }
            return try reducer.reduce(&g, over: group)
        }[0]
        #expect(stats.payloadBytes == 4 * floats)
        #expect(stats.collectives.count == 3)
        #expect(stats.uncompressedBytes == 4 * 11_173_962)
        #expect(abs(stats.compressionRatio - torchRatio) < 0.005, "ratio \(stats.compressionRatio)")
    }

    @Test func zeroGradientsAndZeroColumnsStayFinite() throws {
        let shapes: [[Int]] = [[20, 30], [16, 8]]
        let out = try InProcessGroup.run(workers: 2) { group -> [Tensor] in
            var reducer = try PowerSGD(PowerSGD.Options(rank: 4))
            var g = shapes.map { Tensor(shape: $0) }
            _ = try reducer.reduce(&g, over: group)
            // A rank-1 gradient at rank 4: three of P's columns are dependent.
            var h = [Tensor(shape: [20, 30]) { Float($0 % 30) }, Tensor(shape: [16, 8])]
            _ = try reducer.reduce(&h, over: group)
            let error = try Tensor(shape: [reducer.errorMemory.count], scalars: reducer.errorMemory)
            return g + h + [error]
        }
        for tensors in out { for t in tensors { #expect(t.scalars.allSatisfy { $0.isFinite }) } }
        #expect(out[0][0].scalars.allSatisfy { $0 == 0 })
        let expected = Tensor(shape: [20, 30]) { Float($0 % 30) }
        #expect(relativeDifference([out[0][2]], [expected]) < 1e-5, "\(out[0][2].scalars.prefix(40))")
    }

    /// A worker whose gradient list differs gets a clear error, and so does every other worker.
    @Test func shapeMismatchAcrossWorkersFailsEveryWorker() throws {
        let messages = try InProcessGroup.run(workers: 3) { group -> String in
            var shapes = smallShapes
            if group.rank == 2 { shapes[1] = [16, 3, 3, 2] }
            var reducer = try PowerSGD(PowerSGD.Options(rank: 2))
            var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: 0)
            do { _ = try reducer.reduce(&g, over: group); return "no error" } catch { return "\(error)" }
        }
        for message in messages {
            #expect(message.contains("tensor 1") && message.contains("[16, 3, 3, 3]") && message.contains("[16, 3, 3, 2]")
                    && message.contains("worker 2"), "\(message)")
        }
    }

    @Test func shapeChangeAgainstStateIsAnError() throws {
        let message = try InProcessGroup.run(workers: 1) { group -> String in
            var reducer = try PowerSGD()
            var g = LowRankFixtures.gradients(smallShapes, rank: 0, step: 0)
            _ = try reducer.reduce(&g, over: group)
            var h = LowRankFixtures.gradients([[20, 31]] + smallShapes.dropFirst(), rank: 0, step: 1)
            do { _ = try reducer.reduce(&h, over: group); return "no error" } catch { return "\(error)" }
        }[0]
        #expect(message == "gradient tensor 0 has shape [20, 31], expected [20, 30]")
    }

    /// Save after 3 steps, continue 2; a fresh reducer restored from the archive continues
    /// with the same bits.
    @Test(arguments: [0, 2])
    func checkpointRoundTripContinuesBitForBit(refreshPeriod: Int) throws {
        let options = PowerSGD.Options(rank: 2, seed: 11)
        if refreshPeriod > 0 {
            try checkpointRoundTrip { try PowerSGDPlus(options, period: refreshPeriod) }
        } else {
            try checkpointRoundTrip { try PowerSGD(options) }
        }
    }

    func checkpointRoundTrip<R: GradientReducer>(_ make: @escaping () throws -> R) throws {
        let shapes = smallShapes
        let results = try InProcessGroup.run(workers: 2) { group -> ([[Tensor]], [[Tensor]]) in
            var reducer = try make()
            for step in 0..<3 {
                var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: step)
                _ = try reducer.reduce(&g, over: group)
            }
            var writer = StateWriter()
            reducer.saveState(to: &writer)
            func continueRun(_ r: inout R) throws -> [[Tensor]] {
                try (3..<5).map { step in
                    var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: step)
                    _ = try r.reduce(&g, over: group)
                    return g
                }
            }
            let original = try continueRun(&reducer)
            var restored = try make()
            var reader = StateReader(writer.bytes)
            try restored.restoreState(from: &reader)
            #expect(reader.isAtEnd)
            return (original, try continueRun(&restored))
        }
        for (original, restored) in results { #expect(original == restored) }
    }

    @Test func restoringAnotherConfigurationFails() throws {
        var writer = StateWriter()
        try PowerSGD(PowerSGD.Options(rank: 2)).saveState(to: &writer)
        var other = try PowerSGD(PowerSGD.Options(rank: 4))
        var reader = StateReader(writer.bytes)
        #expect(throws: StateArchiveError.self) { try other.restoreState(from: &reader) }
    }

    @Test func invalidOptionsNameTheOption() throws {
        #expect(throws: GradientCompressionError.invalidOption("powersgd rank must be at least 1 (got 0)")) {
            try PowerSGD(PowerSGD.Options(rank: 0))
        }
        #expect(throws: GradientCompressionError.self) {
            try PowerSGD(specification: ReducerSpecification(parsing: "powersgd:rank=2,bogus=1"))
        }
        let plus = try ReducerCatalog.make(ReducerSpecification(parsing: "powersgd+:rank=4,period=50,warm-start=false"), seed: 0)
        let reducer = try #require(plus as? PowerSGDPlus)
        #expect(reducer.options.rank == 4 && reducer.period == 50 && !reducer.options.warmStart)
        #expect(throws: GradientCompressionError.self) { try PowerSGDPlus(period: 0) }
    }

    /// Before `startIteration` the reducer is exact all-reduce and keeps no error.
    @Test func startIterationRunsPlainAllReduce() throws {
        let shapes = smallShapes
        let results = try InProcessGroup.run(workers: 2) { group -> ([Tensor], Int) in
            var reducer = try PowerSGD(PowerSGD.Options(rank: 1, startIteration: 1))
            var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: 0)
            let stats = try reducer.reduce(&g, over: group)
            return (g, stats.payloadBytes)
        }
        let mean = LowRankFixtures.mean((0..<2).map { LowRankFixtures.gradients(shapes, rank: $0, step: 0) })
        #expect(relativeDifference(results[0].0, mean) < 1e-6)
        let total = shapes.reduce(0) { $0 + Tensor.elementCount($1) }
        // The first call also all-gathers the shape list (once per reducer).
        #expect(results[0].1 > 4 * total && results[0].1 < 4 * total + 200)
    }

    /// Grouping same-shape matrices changes only where their factors sit in the packed buffers
    /// and the order they are visited: in-process the outputs and the error memories are
    /// bit-identical to the ungrouped path, and each group's P and Q blocks are contiguous.
    @Test func groupingSameShapesGivesIdenticalResults() throws {
        let shapes: [[Int]] = [[20, 30], [16, 24], [20, 30], [10], [16, 24], [20, 30]]
        func run(_ grouped: Bool) throws -> [([[Tensor]], [Float])] {
            try InProcessGroup.run(workers: 2) { group -> ([[Tensor]], [Float]) in
                var reducer = try PowerSGD(PowerSGD.Options(rank: 2, seed: 3, groupSameShapes: grouped))
                let outputs = try (0..<4).map { step -> [Tensor] in
                    var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: step)
                    _ = try reducer.reduce(&g, over: group)
                    return g
                }
                return (outputs, reducer.errorMemory)
            }
        }
        let plain = try run(false), grouped = try run(true)
        for worker in 0..<2 {
            #expect(plain[worker].0 == grouped[worker].0)
            #expect(plain[worker].1 == grouped[worker].1)
        }
        let layout = try PowerSGD(PowerSGD.Options(rank: 2, groupSameShapes: true)).layout(for: shapes)
        #expect(layout.compressedOrder == [0, 2, 5, 1, 4])
        #expect(layout.entries[2].pOffset == layout.entries[0].pOffset + 40 && layout.entries[5].qOffset == layout.entries[2].qOffset + 60)
        #expect(layout.entries[1].pOffset == 120 && layout.entries[4].pOffset == 152)
    }

    /// The relative error reported from the factors (‖M‖² − ‖Q_w‖², §powerStep) equals the one
    /// computed from the materialized residual.
    @Test func reportedRelativeErrorMatchesTheResidual() throws {
        let shapes: [[Int]] = [[20, 30], [24, 40]]
        let results = try InProcessGroup.run(workers: 2) { group -> (Double, [Tensor], [Float]) in
            var reducer = try PowerSGD(PowerSGD.Options(rank: 2))
            var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: 0)
            let input = g
            let stats = try reducer.reduce(&g, over: group)
            return (stats.relativeError ?? .nan, input, reducer.errorMemory)
        }
        for (reported, input, error) in results {
            let inputNorm = input.reduce(0.0) { $0 + $1.scalars.reduce(0.0) { $0 + Double($1 * $1) } }
            let residualNorm = error.reduce(0.0) { $0 + Double($1 * $1) }
            let direct = (residualNorm / inputNorm).squareRoot()
            #expect(abs(reported - direct) < 1e-5, "reported \(reported) vs direct \(direct)")
        }
    }
}
