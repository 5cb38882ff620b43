import Collectives
import LinearAlgebra
import Testing
@testable import GradientCompression

/// `worker-momentum=μ`: the wrapped reducer reduces each worker's momentum m ← μ·m + g.
@Suite struct WorkerMomentumReducerTests {
    static let shapes = ReducerDigestTests.shapes

    /// Worker 0's outputs over 5 steps of 3 workers.
    static func outputs(_ text: String, steps: Int = 5) throws -> [[[Float]]] {
        let specification = try ReducerSpecification(parsing: text)
        return try InProcessGroup.run(workers: 3) { group -> [[[Float]]] in
            var reducer = try ReducerCatalog.make(specification, seed: 3)
            return try (0..<steps).map { step in
                var gradients = LowRankFixtures.gradients(shapes, rank: group.rank, step: step)
                _ = try reducer.reduce(&gradients, over: group)
                return gradients.map(\.scalars)
            }
        }[0]
    }

    /// The wrapped reducer fed by hand with each worker's momentum, as the wrapper should feed it.
    static func byHand(_ text: String, momentum mu: Float, nesterov: Bool = false, steps: Int = 5) throws -> [[[Float]]] {
        let specification = try ReducerSpecification(parsing: text)
        return try InProcessGroup.run(workers: 3) { group -> [[[Float]]] in
            var reducer = try ReducerCatalog.make(specification, seed: 3)
            var momenta = shapes.map { [Float](repeating: 0, count: $0.reduce(1, *)) }
            return try (0..<steps).map { step in
                let g = LowRankFixtures.gradients(shapes, rank: group.rank, step: step)
                for i in momenta.indices { for j in momenta[i].indices { momenta[i][j] = mu * momenta[i][j] + g[i].scalars[j] } }
                var input = try shapes.indices.map { i in
                    try Tensor(shape: shapes[i], scalars: nesterov ? zip(g[i].scalars, momenta[i]).map { $0 + mu * $1 } : momenta[i])
                }
                _ = try reducer.reduce(&input, over: group)
                return input.map(\.scalars)
            }
        }[0]
    }

    @Test(arguments: ["powersgd:rank=1", "topk:ratio=0.1", "qsgd:levels=16"])
    func compressorsReduceEachWorkersMomentum(_ text: String) throws {
        let wrapped = try Self.outputs(text + ",worker-momentum=0.9")
        #expect(wrapped == (try Self.byHand(text, momentum: 0.9)), "bit for bit")
        let nesterov = try Self.outputs(text + ",worker-momentum=0.9,worker-nesterov=true")
        #expect(nesterov == (try Self.byHand(text, momentum: 0.9, nesterov: true)), "bit for bit")
        #expect(nesterov[4] != wrapped[4])
        // Not the reducer of the raw gradients (from step 1 on the momentum differs from g).
        #expect(wrapped[4] != (try Self.outputs(text))[4])
    }

    @Test func allReduceOfWorkerMomentumIsTheMomentumOfTheMean() throws {
        let mu = 0.9
        let wrapped = try Self.outputs("sgd:worker-momentum=0.9")
        let workers = try InProcessGroup.run(workers: 3) { group in
            (0..<5).map { LowRankFixtures.gradients(Self.shapes, rank: group.rank, step: $0).map { $0.scalars.map(Double.init) } }
        }
        for i in Self.shapes.indices {
            var m = [Double](repeating: 0, count: Self.shapes[i].reduce(1, *))
            for step in 0..<5 {
                for j in m.indices { m[j] = mu * m[j] + workers.map { $0[step][i][j] }.reduce(0, +) / 3 }
                let scale = m.map(abs).max() ?? 1
                for j in m.indices { #expect(abs(Double(wrapped[step][i][j]) - m[j]) <= 1e-5 * scale, "tensor \(i), step \(step)") }
            }
        }
    }

    @Test func nameParsesBackAndTheOptimizerLeavesMomentumToTheReducer() throws {
        for text in ["sgd:worker-momentum=0.5", "powersgd:rank=2,worker-momentum=0.9", "topk:ratio=0.1,worker-momentum=0.9,worker-nesterov=true"] {
            let reducer = try ReducerCatalog.make(try ReducerSpecification(parsing: text), seed: 1)
            #expect(reducer.appliesMomentum)
            let again = try ReducerCatalog.make(try ReducerSpecification(parsing: reducer.name), seed: 1)
            #expect(again.name == reducer.name)
        }
        #expect(try ReducerCatalog.make(try ReducerSpecification(parsing: "sgd:worker-momentum=0.5"), seed: 1).name == "sgd(worker-momentum=0.5)")
    }

    @Test(arguments: [("dgc:worker-momentum=0.9", "applies momentum itself"), ("signum:worker-momentum=0.9", "applies momentum itself"),
                      ("sgd:worker-momentum=1", "must be in (0, 1)"), ("sgd:worker-momentum=0", "must be in (0, 1)"),
                      ("sgd:worker-momentum=fast", "takes one number"),
                      ("sgd:worker-nesterov=true", "needs worker-momentum"), ("sgd:worker-momentum=0.9,worker-nesterov=yes", "true or false"), ("powersgd:worker-momentum=0.5,worker-momentum=0.6", "takes one number")])
    func badUsesAreRefusedNamingTheOption(_ text: String, _ message: String) throws {
        do {
            _ = try ReducerCatalog.make(try ReducerSpecification(parsing: text), seed: 1)
            Issue.record("\(text) was accepted")
        } catch {
            #expect("\(error)".contains(message), "\(error)")
        }
    }

    @Test func checkpointedStateContinuesTheSameSteps() throws {
        let specification = try ReducerSpecification(parsing: "powersgd:rank=1,worker-momentum=0.9")
        let results = try InProcessGroup.run(workers: 2) { group -> ([[Float]], [[Float]]) in
            var reducer = try ReducerCatalog.make(specification, seed: 3)
            for step in 0..<3 {
                var g = LowRankFixtures.gradients(Self.shapes, rank: group.rank, step: step)
                _ = try reducer.reduce(&g, over: group)
            }
            var archive = StateWriter()
            reducer.saveState(to: &archive)
            var restored = try ReducerCatalog.make(specification, seed: 3)
            var reader = StateReader(archive.bytes)
            try restored.restoreState(from: &reader)
            var a = LowRankFixtures.gradients(Self.shapes, rank: group.rank, step: 3), b = a
            _ = try reducer.reduce(&a, over: group)
            _ = try restored.reduce(&b, over: group)
            return (a.map(\.scalars), b.map(\.scalars))
        }
        #expect(results[0].0 == results[0].1)
    }

    @Test func aGradientListOfOtherShapesIsRefused() throws {
        let specification = try ReducerSpecification(parsing: "sgd:worker-momentum=0.9")
        _ = try InProcessGroup.run(workers: 1) { group in
            var reducer = try ReducerCatalog.make(specification, seed: 3)
            var g = [Tensor(shape: [4, 3])]
            _ = try reducer.reduce(&g, over: group)
            var other = [Tensor(shape: [3, 4])]
            #expect(throws: GradientCompressionError.self) { _ = try reducer.reduce(&other, over: group) }
        }
    }
}
