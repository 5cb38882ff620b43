import Collectives
import Foundation
import LinearAlgebra
import Testing
@testable import GradientCompression
import TestSupport

/// A problem where per-layer ranks matter: every layer's gradient is a fixed signal of its own
/// rank (1, 4, 2, 6) plus per-worker, per-step noise, and one 1-D tensor.
enum LGreCoFixtures {
    static let shapes: [[Int]] = [[40, 60], [36, 48], [30, 50], [8], [48, 40]]
    static let signalRanks = [1, 4, 2, 0, 6]

    static func signals() throws -> [Tensor] {
        try shapes.enumerated().map { index, shape in
            guard shape.count == 2 else { return Tensor(shape: shape, repeating: 0.5) }
            let sigma = (0..<signalRanks[index]).map { Float(4 - 0.4 * Double($0)) }
            return try LowRankFixtures.matrix(rows: shape[0], columns: shape[1], singularValues: sigma, seed: UInt64(10 + index))
        }
    }

    /// signal + noise·N(0, 1), a pure function of (worker, step).
    static func gradients(_ signals: [Tensor], rank: Int, step: Int, noise: Float = 0.05) -> [Tensor] {
        let z = LowRankFixtures.gradients(shapes, rank: rank, step: step, seed: 21)
        return zip(signals, z).map { s, n in
            var g = s
            for i in g.scalars.indices { g.scalars[i] += noise * n.scalars[i] }
            return g
        }
    }

    /// 4·(Σ r(n+m) over compressed tensors + elements of the others): one compressed step's payload.
    static func payloadBytes(_ layout: MatrixLayout) -> Int {
        4 * layout.entries.reduce(0) { $0 + ($1.isCompressed ? $1.rank * ($1.rows + $1.columns) : $1.count) }
    }
}

@Suite struct LGreCoTests {
    /// Every worker holds the same plan after every step (the plan is rank 0's, broadcast), the
    /// outputs agree bit for bit, and the plan does move away from uniform on this problem.
    @Test(arguments: [2, 3])
    func ranksAndOutputsIdenticalOnAllWorkers(workers: Int) throws {
        let signals = try LGreCoFixtures.signals()
        let options = LGreCo.Options(powerSGD: PowerSGD.Options(rank: 2, seed: 5), period: 4, accumulationSteps: 2)
        let runs = try InProcessGroup.run(workers: workers) { group -> [([Int], [Tensor])] in
            var reducer = try LGreCo(options)
            return try (0..<13).map { step in
                var g = LGreCoFixtures.gradients(signals, rank: group.rank, step: step)
                _ = try reducer.reduce(&g, over: group)
                return (reducer.ranks!, g)
            }
        }
        for step in 0..<13 {
            for worker in 1..<workers {
                #expect(runs[worker][step].0 == runs[0][step].0, "step \(step): worker \(worker)'s ranks differ")
                #expect(runs[worker][step].1 == runs[0][step].1, "step \(step): worker \(worker)'s output differs")
            }
        }
        let uniform = runs[0][0].0
        #expect(uniform == [2, 2, 2, 0, 2])
        #expect(runs[0][12].0 != uniform, "the plan stayed uniform: \(runs[0][12].0)")
        // Re-plans happen at compressed steps 4, 8, 12 only: ranks are constant in between.
        for step in [1, 2, 3, 5, 6, 7, 9, 10, 11] where step != 4 {
            #expect(runs[0][step].0 == runs[0][step - 1].0 || step % 4 == 0)
        }
    }

    /// The plan is re-made exactly at the period, from the errors of the accumulated inputs of
    /// rank 0 (checked against a direct SVD of that accumulation), and it is what the planner
    /// gives on those errors.
    @Test func planIsThePlannersOnTheMeasuredErrorsAtThePeriod() throws {
        let signals = try LGreCoFixtures.signals()
        // No error feedback, so rank 0's input M is its gradient and A is computable here.
        let options = LGreCo.Options(powerSGD: PowerSGD.Options(rank: 2, errorFeedback: .off, seed: 3),
                                     period: 3, accumulationSteps: 2)
        let results = try InProcessGroup.run(workers: 2) { group -> ([Int], [[Int]], [(tensor: Int, candidates: [LGreCoPlanner.Candidate])]) in
            var reducer = try LGreCo(options)
            var plans: [Int] = [], ranks: [[Int]] = []
            var measurement: [(tensor: Int, candidates: [LGreCoPlanner.Candidate])] = []
            for step in 0..<7 {
                var g = LGreCoFixtures.gradients(signals, rank: group.rank, step: step)
                _ = try reducer.reduce(&g, over: group)
                plans.append(reducer.plansMade)
                ranks.append(reducer.ranks!)
                if step == 3 { measurement = reducer.lastMeasurement }
            }
            return (plans, ranks, measurement)
        }
        #expect(results[0].0 == [0, 0, 0, 1, 1, 1, 2], "re-plans at compressed steps 3 and 6: \(results[0].0)")
        #expect(results[1].0 == results[0].0)
        let measurement = results[0].2
        #expect(results[1].2.isEmpty, "only rank 0 measures")
        #expect(measurement.map(\.tensor) == [0, 1, 2, 4])
        // A = mean of rank 0's gradients at steps 1 and 2 (t mod 3 ≥ 3 − 2).
        let g1 = LGreCoFixtures.gradients(signals, rank: 0, step: 1), g2 = LGreCoFixtures.gradients(signals, rank: 0, step: 2)
        for (tensor, candidates) in measurement {
            let a = LowRankFixtures.mean([[g1[tensor]], [g2[tensor]]])[0]
            let sigma = try SingularValueDecomposition(a).singularValues
            #expect(candidates.map(\.rank) == [1, 2, 3, 4])
            for c in candidates {
                let exact = sigma.dropFirst(c.rank).reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                #expect(abs(c.error - exact) <= 1e-3 * Double(sigma[0]), "tensor \(tensor) rank \(c.rank): \(c.error) vs \(exact)")
                #expect(c.size == c.rank * (a.shape[0] + a.shape[1]))
            }
        }
        let choice = LGreCoPlanner.plan(measurement.map(\.candidates), uniform: measurement.map { _ in 1 })
        var expected = [2, 2, 2, 0, 2]
        for (l, (tensor, candidates)) in measurement.enumerated() { expected[tensor] = candidates[choice[l]].rank }
        #expect(results[0].1[3] == expected)
        #expect(results[1].1[3] == expected)
        // Not uniform, and smaller than uniform: the rank-1 layer goes down, the rank-4 one up.
        #expect(expected[0] == 1 && expected[1] >= 3, "\(expected)")
        let size = measurement.enumerated().reduce(0) { $0 + $1.1.candidates[choice[$1.0]].size }
        #expect(size < measurement.reduce(0) { $0 + $1.candidates[1].size })
    }

    /// Payload per step = 4·(Σ r_l(n_l+m_l) + uncompressed) for the ranks in force, plus the
    /// plan's broadcast (1 + 4·tensors bytes, counted on the root) on re-plan steps.
    @Test func payloadBytesMatchTheFormulaForTheChosenRanks() throws {
        let signals = try LGreCoFixtures.signals()
        let options = LGreCo.Options(powerSGD: PowerSGD.Options(rank: 2), period: 3, accumulationSteps: 3)
        let runs = try InProcessGroup.run(workers: 2) { group -> [(ReductionStats, MatrixLayout)] in
            var reducer = try LGreCo(options)
            return try (0..<8).map { step in
                var g = LGreCoFixtures.gradients(signals, rank: group.rank, step: step)
                let stats = try reducer.reduce(&g, over: group)
                return (stats, reducer.layout!)
            }
        }
        let tensors = LGreCoFixtures.shapes.count
        for (worker, run) in runs.enumerated() {
            for (step, (stats, layout)) in run.enumerated() where step > 0 {
                let replan = step % 3 == 0
                let broadcast = replan && worker == 0 ? 1 + 4 * tensors : 0
                #expect(stats.payloadBytes == LGreCoFixtures.payloadBytes(layout) + broadcast, "worker \(worker) step \(step)")
                #expect(stats.collectives.count == (replan ? 4 : 3))
            }
        }
        #expect(runs[0][7].1.entries.map(\.rank) != [2, 2, 2, 0, 2])
    }

    /// Save mid-accumulation (before a re-plan), continue through two re-plans; a restored
    /// reducer continues with the same bits and the same plans.
    @Test func checkpointRestoreContinuesBitForBit() throws {
        let signals = try LGreCoFixtures.signals()
        let options = LGreCo.Options(powerSGD: PowerSGD.Options(rank: 2, seed: 9), period: 3, accumulationSteps: 2)
        let results = try InProcessGroup.run(workers: 2) { group -> ([[Tensor]], [[Tensor]], [[Int]], [[Int]]) in
            var reducer = try LGreCo(options)
            for step in 0..<5 {
                var g = LGreCoFixtures.gradients(signals, rank: group.rank, step: step)
                _ = try reducer.reduce(&g, over: group)
            }
            var writer = StateWriter()
            reducer.saveState(to: &writer)
            func continueRun(_ r: inout LGreCo) throws -> ([[Tensor]], [[Int]]) {
                var outputs: [[Tensor]] = [], ranks: [[Int]] = []
                for step in 5..<10 {
                    var g = LGreCoFixtures.gradients(signals, rank: group.rank, step: step)
                    _ = try r.reduce(&g, over: group)
                    outputs.append(g); ranks.append(r.ranks!)
                }
                return (outputs, ranks)
            }
            let original = try continueRun(&reducer)
            var restored = try LGreCo(options)
            var reader = StateReader(writer.bytes)
            try restored.restoreState(from: &reader)
            #expect(reader.isAtEnd)
            let again = try continueRun(&restored)
            return (original.0, again.0, original.1, again.1)
        }
        for (original, restored, ranks, restoredRanks) in results {
            #expect(original == restored)
            #expect(ranks == restoredRanks)
        }
        #expect(results[0].2[0] != [2, 2, 2, 0, 2], "the saved state already held a non-uniform plan")
    }

    /// Error feedback carries over re-plans: Σ_t applied + mean final error = Σ_t mean gradients.
    @Test func errorFeedbackConservesMassAcrossReplans() throws {
        let signals = try LGreCoFixtures.signals()
        let options = LGreCo.Options(powerSGD: PowerSGD.Options(rank: 2), period: 2, accumulationSteps: 1)
        let steps = 7, workers = 2
        let results = try InProcessGroup.run(workers: workers) { group -> ([Tensor], [Float], MatrixLayout) in
            var reducer = try LGreCo(options)
            var applied = LGreCoFixtures.shapes.map { Tensor(shape: $0) }
            for step in 0..<steps {
                var g = LGreCoFixtures.gradients(signals, rank: group.rank, step: step)
                _ = try reducer.reduce(&g, over: group)
                for i in applied.indices { for j in applied[i].scalars.indices { applied[i].scalars[j] += g[i].scalars[j] } }
            }
            return (applied, reducer.powerSGD.errorMemory, reducer.layout!)
        }
        let layout = results[0].2
        var lhs = results[0].0
        for (index, entry) in layout.entries.enumerated() where entry.isCompressed {
            for j in 0..<entry.count {
                lhs[index].scalars[j] += results.reduce(Float(0)) { $0 + $1.1[entry.errorOffset + j] } / Float(workers)
            }
        }
        var rhs = LGreCoFixtures.shapes.map { Tensor(shape: $0) }
        for step in 0..<steps {
            let mean = LowRankFixtures.mean((0..<workers).map { LGreCoFixtures.gradients(signals, rank: $0, step: step) })
            for i in rhs.indices { for j in rhs[i].scalars.indices { rhs[i].scalars[j] += mean[i].scalars[j] } }
        }
        #expect(relativeDifference(lhs, rhs) < 1e-5)
    }

    /// Training a quadratic ½Σ‖X_l − T_l‖² (targets of ranks 1, 4, 2, 6) with noisy gradients.
    /// L-GreCo's promise is the uniform rank's error at a smaller size (the planner's constraint),
    /// not a lower loss: here it sends fewer bytes than uniform rank 2 and its final loss and
    /// mean relative approximation error stay within 10 % and 1 % of uniform's. (Measured:
    /// loss 19.15 vs 17.83, error 0.951 vs 0.950, bytes 110,495 vs 111,072 — the loss is NOT
    /// better; the fresh Q's of re-ranked tensors lose one step of warm start at each re-plan.)
    @Test func trainsWithFewerBytesAndLossWithinTenPercentOfUniform() throws {
        let targets = try LGreCoFixtures.signals()
        let steps = 40, lr: Float = 0.3
        func train(_ make: @escaping @Sendable () throws -> any GradientReducer) throws -> (loss: Double, bytes: Int, error: Double) {
            try InProcessGroup.run(workers: 2) { group -> (Double, Int, Double) in
                var reducer = try make()
                var x = LGreCoFixtures.shapes.map { Tensor(shape: $0) }
                var bytes = 0, errors: [Double] = []
                for step in 0..<steps {
                    let noise = LowRankFixtures.gradients(LGreCoFixtures.shapes, rank: group.rank, step: step, seed: 33)
                    var g = (0..<x.count).map { i -> Tensor in
                        var t = x[i]
                        for j in t.scalars.indices { t.scalars[j] = x[i].scalars[j] - targets[i].scalars[j] + 0.05 * noise[i].scalars[j] }
                        return t
                    }
                    let stats = try reducer.reduce(&g, over: group)
                    if step > 0 { bytes += stats.payloadBytes }
                    if step >= 10 { errors.append(stats.relativeError ?? .nan) }
                    for i in x.indices { for j in x[i].scalars.indices { x[i].scalars[j] -= lr * g[i].scalars[j] } }
                }
                var loss = 0.0
                for i in x.indices { for j in x[i].scalars.indices { let d = Double(x[i].scalars[j] - targets[i].scalars[j]); loss += 0.5 * d * d } }
                return (loss, bytes, errors.reduce(0, +) / Double(errors.count))
            }[0]
        }
        let uniform = try train { try PowerSGD(PowerSGD.Options(rank: 2, seed: 4)) }
        let lgreco = try train { try LGreCo(LGreCo.Options(powerSGD: PowerSGD.Options(rank: 2, seed: 4), period: 10, accumulationSteps: 5)) }
        #expect(lgreco.bytes < uniform.bytes, "bytes \(lgreco.bytes) vs \(uniform.bytes)")
        #expect(lgreco.loss <= 1.10 * uniform.loss, "loss \(lgreco.loss) vs uniform \(uniform.loss)")
        #expect(lgreco.error <= 1.01 * uniform.error, "relative error \(lgreco.error) vs uniform \(uniform.error)")
    }

    @Test func gramSingularValuesMatchTheDirectSVD() throws {
        for (n, m) in [(30, 50), (50, 30), (1, 7)] {
            let a = Philox(seed: 4, stream: UInt64(n)).normalTensor(shape: [n, m])
            let direct = try SingularValueDecomposition(a).singularValues
            let gram = try a.withUnsafeBufferPointer { try LGreCoPlanner.singularValues(of: $0.baseAddress!, rows: n, columns: m) }
            #expect(gram.count == direct.count)
            for (x, y) in zip(gram, direct) { #expect(abs(x - y) <= 1e-3 * direct[0], "\(n)×\(m): \(x) vs \(y)") }
        }
    }

    @Test func catalogBuildsLGreCoAndRejectsBadRanks() throws {
        let reducer = try ReducerCatalog.make(ReducerSpecification(parsing: "lgreco:rank=2,period=50,accumulate=4"), seed: 1)
        let lgreco = try #require(reducer as? LGreCo)
        #expect(lgreco.options.period == 50 && lgreco.options.accumulationSteps == 4)
        #expect(lgreco.options.minimumRank == 1 && lgreco.options.maximumRank == 4 && lgreco.options.powerSGD.seed == 1)
        #expect(lgreco.name == "lgreco(rank=2,period=50,accumulate=4)")
        #expect(throws: GradientCompressionError.invalidOption("lgreco needs 1 ≤ min-rank ≤ rank ≤ max-rank (got 3, 2, 4)")) {
            _ = try ReducerCatalog.make(ReducerSpecification(parsing: "lgreco:rank=2,min-rank=3"), seed: 0)
        }
    }
}
