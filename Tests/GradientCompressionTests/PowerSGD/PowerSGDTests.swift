import Collectives
import Foundation
import LinearAlgebra
import Testing
@testable import GradientCompression

/// Worker w's gradient list for shapes: Philox normals keyed by (seed, worker, step, tensor).
func gradients(_ shapes: [[Int]], worker: Int, step: Int = 0, seed: UInt64 = 1) -> [Tensor] {
    shapes.enumerated().map { index, shape in
        Philox(seed: seed, stream: Philox.stream(UInt64(worker), UInt64(step), UInt64(index))).normalTensor(shape: shape)
    }
}

func relativeDistance(_ a: [Tensor], _ b: [Tensor]) -> Double {
    var diff = 0.0, norm = 0.0
    for (x, y) in zip(a, b) {
        for (u, v) in zip(x.scalars, y.scalars) { diff += Double(u - v) * Double(u - v); norm += Double(v) * Double(v) }
    }
    return (diff / max(norm, 1e-300)).squareRoot()
}

@Suite struct PowerSGDTests {
    static let shapes: [[Int]] = [[32, 16, 3, 3], [32], [10, 64], [7, 5, 2], [48, 48]]

    /// The paper's linearity: with error feedback off and the same Q, the result on W = 4 workers
    /// equals single-worker PowerSGD applied to the mean gradient.
    @Test func compressingTheAverageEqualsAveragingTheCompressedPieces() throws {
        let options = PowerSGDOptions(rank: 2, errorFeedback: false, seed: 5)
        let distributed = try InProcessGroup.run(workers: 4) { group -> [Tensor] in
            var reducer = try PowerSGD(options: options)
            var g = gradients(Self.shapes, worker: group.rank)
            _ = try reducer.reduce(&g, over: group)
            return g
        }
        var mean = gradients(Self.shapes, worker: 0)
        for w in 1..<4 {
            for (i, t) in gradients(Self.shapes, worker: w).enumerated() {
                mean[i].scalars = zip(mean[i].scalars, t.scalars).map { $0 + $1 }
            }
        }
        for i in mean.indices { mean[i].scalars = mean[i].scalars.map { $0 / 4 } }
        let single = try InProcessGroup.run(workers: 1) { group -> [Tensor] in
            var reducer = try PowerSGD(options: options)
            var g = mean
            _ = try reducer.reduce(&g, over: group)
            return g
        }[0]
        for w in 0..<4 {
            #expect(distributed[w] == distributed[0], "worker \(w) differs")
            #expect(relativeDistance(distributed[w], single) < 1e-5)
        }
    }

    /// An exactly rank-2 matrix is reproduced to 1e-4 after a few warm-started steps, and on a
    /// random matrix the error approaches the optimum ‖M − M_r‖ of the exact SVD (power
    /// iteration converges on a fixed matrix).
    @Test func warmStartConvergesToTheBestRankRApproximation() throws {
        let lowRank = try matmul(Philox(seed: 1).normalTensor(shape: [40, 2]), Philox(seed: 2).normalTensor(shape: [2, 30]))
        // A random matrix with a decaying spectrum σ_i = 0.8^i: power iteration's error then
        // falls like (σ₃/σ₂)^t towards the optimum.
        let base = try SingularValueDecomposition(Philox(seed: 3).normalTensor(shape: [40, 30]))
        var decaying = base
        decaying.singularValues = (0..<30).map { Float(pow(0.8, Double($0))) }
        let random = decaying.reconstruction(rank: 30)
        for (matrix, exact) in [(lowRank, true), (random, false)] {
            var reducer = try PowerSGD(options: PowerSGDOptions(rank: 2, errorFeedback: false, seed: 9))
            var errors: [Double] = []
            try InProcessGroup.run(workers: 1) { group in
                for _ in 0..<40 {
                    var g = [matrix]
                    _ = try reducer.reduce(&g, over: group)
                    errors.append(relativeDistance(g, [matrix]))
                }
            }
            let svd = try SingularValueDecomposition(matrix)
            let optimum = relativeDistance([svd.reconstruction(rank: 2)], [matrix])
            if exact {
                #expect(errors[4] < 1e-4)
            } else {
                #expect(errors[0] > optimum * 1.05, "the first step should not already be optimal")
                #expect(errors.last! < optimum * 1.001)
            }
        }
    }

    /// Error feedback loses nothing: over T steps, Σ applied updates + mean final error
    /// = Σ mean gradients (both variants of the residual).
    @Test(arguments: ErrorFeedbackResidual.allCases)
    func errorFeedbackConservesMass(residual: ErrorFeedbackResidual) throws {
        let steps = 6, workers = 3
        let results = try InProcessGroup.run(workers: workers) { group -> (applied: [Tensor], error: [Tensor]) in
            var reducer = try PowerSGD(options: PowerSGDOptions(rank: 1, errorFeedbackResidual: residual, seed: 2))
            var applied = Self.shapes.map { Tensor(shape: $0) }
            for t in 0..<steps {
                var g = gradients(Self.shapes, worker: group.rank, step: t)
                _ = try reducer.reduce(&g, over: group)
                for i in g.indices { applied[i].scalars = zip(applied[i].scalars, g[i].scalars).map { $0 + $1 } }
            }
            return (applied, reducer.errorMemory(shapes: Self.shapes))
        }
        var expected = Self.shapes.map { Tensor(shape: $0) }
        for t in 0..<steps { for w in 0..<workers {
            for (i, g) in gradients(Self.shapes, worker: w, step: t).enumerated() {
                expected[i].scalars = zip(expected[i].scalars, g.scalars).map { $0 + $1 / Float(workers) }
            }
        } }
        var total = results[0].applied
        for w in 0..<workers { for i in total.indices {
            total[i].scalars = zip(total[i].scalars, results[w].error[i].scalars).map { $0 + $1 / Float(workers) }
        } }
        #expect(relativeDistance(total, expected) < 1e-5)
    }

    /// The paper's and PyTorch's compression ratios on ResNet-18 (PyTorch's hook reports 243.26,
    /// 135.84 and 72.13 for this model), from the bytes that actually crossed the communicator.
    @Test(arguments: [(1, 243.26), (2, 135.84), (4, 72.13)])
    func resNet18CompressionRatios(rank: Int, expected: Double) throws {
        let shapes = resNet18Shapes()
        #expect(shapes.count == 62 && shapes.reduce(0) { $0 + Tensor.elementCount($1) } == 11_173_962)
        let stats = try InProcessGroup.run(workers: 2) { group -> ReductionStats in
            var reducer = try PowerSGD(options: PowerSGDOptions(rank: rank))
            var g = shapes.map { Tensor(shape: $0, repeating: 0.01) }
            _ = try reducer.reduce(&g, over: group)   // the first call also checks the shapes agree
            g = shapes.map { Tensor(shape: $0, repeating: 0.01) }
            return try reducer.reduce(&g, over: group)
        }
        #expect(abs(stats[0].compressionRatio - expected) < 0.01)
        #expect(stats[0].collectives.count == 3)
    }

    @Test func zeroGradientsAndZeroColumnsStayFinite() throws {
        let results = try InProcessGroup.run(workers: 2) { group -> [Tensor] in
            var reducer = try PowerSGD(options: PowerSGDOptions(rank: 4))
            var g = Self.shapes.map { Tensor(shape: $0) }
            _ = try reducer.reduce(&g, over: group)
            var h = gradients(Self.shapes, worker: group.rank)
            for i in stride(from: 0, to: h[4].count, by: 48) { h[4].scalars[i] = 0 }  // a zero column
            _ = try reducer.reduce(&h, over: group)
            return g + h
        }
        #expect(results[0].allSatisfy { $0.scalars.allSatisfy(\.isFinite) })
        #expect(results[0].prefix(Self.shapes.count).allSatisfy { $0.scalars.allSatisfy { $0 == 0 } })
    }

    @Test func workersWithDifferentShapesAllGetAClearError() throws {
        let messages = MessageLog()
        _ = try? InProcessGroup.run(workers: 3) { group -> Int in
            var reducer = try PowerSGD(options: PowerSGDOptions(rank: 2))
            var shapes = Self.shapes
            if group.rank == 1 { shapes[4] = [48, 47] }
            var g = gradients(shapes, worker: group.rank)
            do { _ = try reducer.reduce(&g, over: group) } catch { messages.append("\(error)"); throw error }
            return 0
        }
        #expect(messages.values.count == 3)
        #expect(messages.values.allSatisfy { $0.contains("gradient lists differ") })

        // A list that changes later is refused locally with the tensor named.
        #expect(throws: GradientCompressionError.shapeMismatch(tensor: 2, expected: [10, 64], found: [10, 65])) {
            do { try InProcessGroup.run(workers: 1) { group in
                var reducer = try PowerSGD(options: PowerSGDOptions(rank: 2))
                var g = gradients(Self.shapes, worker: 0)
                _ = try reducer.reduce(&g, over: group)
                var changed = Self.shapes
                changed[2] = [10, 65]
                var h = gradients(changed, worker: 0)
                _ = try reducer.reduce(&h, over: group)
            } } catch let error as WorkerError { throw error.underlying }
        }
    }

    /// Saving after 3 steps and restoring into a fresh reducer continues bit for bit.
    @Test func checkpointContinuesBitForBit() throws {
        let results = try InProcessGroup.run(workers: 2) { group -> Bool in
            var a = try PowerSGD(options: PowerSGDOptions(rank: 2, seed: 4))
            for t in 0..<3 { var g = gradients(Self.shapes, worker: group.rank, step: t); _ = try a.reduce(&g, over: group) }
            var writer = StateWriter()
            a.saveState(to: &writer)
            var b = try PowerSGD(options: PowerSGDOptions(rank: 2, seed: 4))
            var reader = StateReader(writer.bytes)
            try b.restoreState(from: &reader)
            var same = true
            for t in 3..<6 {
                var g = gradients(Self.shapes, worker: group.rank, step: t), h = g
                _ = try a.reduce(&g, over: group)
                _ = try b.reduce(&h, over: group)
                same = same && g == h
            }
            return same
        }
        #expect(results == [true, true])
    }

    @Test func invalidOptionsAreRefusedNamingTheOption() {
        #expect(throws: GradientCompressionError.invalidOption("powersgd: rank must be at least 1 (got 0)")) {
            try PowerSGD(options: PowerSGDOptions(rank: 0))
        }
    }
}

extension PowerSGD {
    /// This worker's error memory as tensors of the given shapes (zero for uncompressed ones).
    func errorMemory(shapes: [[Int]]) -> [Tensor] {
        var writer = StateWriter()
        saveState(to: &writer)
        var reader = StateReader(writer.bytes)
        var result = shapes.map { Tensor(shape: $0) }
        try! reader.expect("powersgd")
        _ = try! reader.readInt(); _ = try! reader.readBool()
        let count = try! reader.readInt()
        for _ in 0..<count { let d = try! reader.readInt(); for _ in 0..<d { _ = try! reader.readInt() } }
        _ = try! reader.readBool(); _ = try! reader.readFloats()
        let plan = PowerSGD.makePlan(shapes: shapes, options: options)
        let errorCount = try! reader.readInt()
        for k in 0..<errorCount { result[plan.matrices[k].tensor].scalars = try! reader.readFloats() }
        return result
    }
}

final class MessageLog: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [String] = []
    func append(_ s: String) { lock.lock(); values.append(s); lock.unlock() }
}
