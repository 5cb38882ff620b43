import Collectives
import Foundation
import LinearAlgebra
import Testing
import TestSupport
@testable import GradientCompression

/// `power-iterations=k`: each power step after the first costs two more all-reduces (P and Q̄),
/// counted in the bytes, and brings PowerSGD's approximation to the exact rank-r SVD's.
@Suite struct PowerIterationTests {
    /// Payload per worker per step: the uncompressed tensors once, P and Q̄ of every compressed
    /// matrix k times (4 bytes per float), in 1 + 2k collectives.
    @Test(arguments: [1, 2, 4])
    func bytesAndCollectivesFollowTheFormula(iterations: Int) throws {
        let shapes: [[Int]] = [[20, 30], [16, 8], [7], [12, 3, 3, 3]]
        let options = PowerSGD.Options(rank: 2, powerIterations: iterations)
        let layout = try PowerSGD(options).layout(for: shapes)
        let stats = try InProcessGroup.run(workers: 2) { group -> ReductionStats in
            var reducer = try PowerSGD(options)
            var g = LowRankFixtures.gradients(shapes, rank: group.rank, step: 0)
            _ = try reducer.reduce(&g, over: group)
            g = LowRankFixtures.gradients(shapes, rank: group.rank, step: 1)
            return try reducer.reduce(&g, over: group)
        }[0]
        #expect(layout.pCount + layout.qCount > 0 && layout.uncompressedCount > 0)
        #expect(stats.payloadBytes == 4 * (layout.uncompressedCount + iterations * (layout.pCount + layout.qCount)))
        #expect(stats.collectives.count == 1 + 2 * iterations)
    }

    /// On a matrix with a known spectrum (σᵢ = 0.7ⁱ), without warm start or error feedback, the
    /// relative error of one reduce falls with k toward the Eckart–Young optimum, which
    /// `ExactSVDReducer` attains; the gap shrinks like (σ_{r+1}/σ_r)^{2k}.
    @Test func errorFallsTowardTheExactSVDsAsIterationsGrow() throws {
        let spectrum = (0..<24).map { Float(pow(0.7, Double($0))) }
        let m = try LowRankFixtures.matrix(rows: 40, columns: 30, singularValues: spectrum, seed: 5)
        let norm = LowRankFixtures.norm(m)
        let optimal = try LowRankFixtures.optimalError(m, rank: 2) / norm
        func relativeError(_ make: @escaping () throws -> any GradientReducer) throws -> Double {
            let out = try InProcessGroup.run(workers: 1) { group -> Tensor in
                var reducer = try make()
                var g = [m]
                _ = try reducer.reduce(&g, over: group)
                return g[0]
            }[0]
            return LowRankFixtures.norm(try Tensor(shape: m.shape, scalars: zip(m.scalars, out.scalars).map { $0 - $1 })) / norm
        }
        #expect(abs(try relativeError { try ExactSVDReducer(rank: 2, errorFeedback: false) } - optimal) < 1e-4 * optimal)
        var errors: [Double] = []
        for k in [1, 2, 4, 8, 16] {
            errors.append(try relativeError {
                try PowerSGD(PowerSGD.Options(rank: 2, errorFeedback: .off, warmStart: false, seed: 3, powerIterations: k))
            })
        }
        for (fewer, more) in zip(errors, errors.dropFirst()) {
            #expect(more <= fewer * (1 + 1e-5), "errors by k = 1, 2, 4, 8, 16: \(errors), optimum \(optimal)")
        }
        #expect(errors[0] > 1.05 * optimal, "one step from a random Q is not yet optimal: \(errors[0]) vs \(optimal)")
        #expect(errors[4] < 1.001 * optimal, "k = 16: \(errors[4]) vs \(optimal)")
    }

    @Test func theOptionIsValidatedAndNamed() throws {
        #expect(throws: GradientCompressionError.self) { try PowerSGD(PowerSGD.Options(powerIterations: 0)) }
        #expect(throws: GradientCompressionError.self) {
            try ReducerCatalog.make(ReducerSpecification(parsing: "powersgd:power-iterations=0"), seed: 0)
        }
        let reducer = try ReducerCatalog.make(ReducerSpecification(parsing: "powersgd:rank=1,power-iterations=3"), seed: 0)
        #expect(reducer.name == "powersgd(rank=1,power-iterations=3)")
        #expect(try PowerSGD(specification: ReducerSpecification(parsing: reducer.name)).options.powerIterations == 3)
    }
}
