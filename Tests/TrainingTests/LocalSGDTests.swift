import Collectives
import Foundation
@testable import GradientCompression
import LinearAlgebra
import NeuralNetworks
import Testing
import TestSupport
@testable import Training

/// Local SGD / DiLoCo (`LocalSGDWorkload`, `OuterOptimizer`, ALGORITHMS.md §12.4).
@Suite struct LocalSGDTests {
    struct Run {
        var losses: [Double] = []
        var payloads: [Int] = []
        var parameters: [Tensor] = []
        var roundStart: [Tensor] = []
    }

    /// `workers` threads train the trainer tests' MLP for `steps` steps under local SGD with H =
    /// `syncEvery` (nil: plain per-step data parallelism).
    static func train(workers: Int, steps: Int, syncEvery: Int?, outer: OuterOptimizer = .averaging,
                      reducer: @escaping () throws -> any GradientReducer = { UncompressedReducer() },
                      checkpointEvery: Int = 0, directory: URL? = nil, resumeFrom: Int? = nil) throws -> [Run] {
        try InProcessGroup.run(workers: workers) { group in
            let base = DataParallelTrainerTests.workload()
            let work: Workload = syncEvery.map { LocalSGDWorkload(inner: base, syncEvery: $0, outer: outer) } ?? base
            var r = try reducer()
            var start = 0
            if let resumeFrom, let directory {
                start = try Checkpoint.restore(from: directory, step: resumeFrom, workload: work, reducer: &r, group: group)
            }
            var run = Run()
            try DataParallelTrainer(options: .init(totalSteps: steps, checkpointEvery: checkpointEvery, checkpointDirectory: directory))
                .run(workload: work, reducer: &r, group: group, startStep: start, onStep: {
                    run.losses.append($0.loss)
                    run.payloads.append($0.reduction.payloadBytes)
                })
            run.parameters = base.parameterValues
            run.roundStart = (work as? LocalSGDWorkload)?.roundStart ?? []
            return run
        }
    }

    /// H = 1 with plain averaging is per-step data parallelism: mean_w(θ − θ_w) = lr·mean_w(m_w)
    /// and the workers' momenta average to the momentum of the averaged gradient (momentum,
    /// Nesterov and weight decay are linear in the gradient at equal θ). Not bit for bit: the
    /// subtraction θ − θ_w and the order of averaging round differently, so 1e-5 relative after 6
    /// steps. An outer learning rate of 0.5 moves half as far and must fail the same check.
    @Test func oneInnerStepWithPlainAveragingIsDataParallelTraining() throws {
        let plain = try Self.train(workers: 2, steps: 6, syncEvery: nil)
        let local = try Self.train(workers: 2, steps: 6, syncEvery: 1)
        let initial = DataParallelTrainerTests.workload().parameterValues
        let difference = relativeDifference(local[0].parameters, plain[0].parameters)
        #expect(difference < 1e-5, "relative difference \(difference)")
        #expect(relativeDifference(plain[0].parameters, initial) > 1e-2, "training moved the parameters")
        #expect(local[1].parameters == local[0].parameters, "replicas identical after every round")
        let halved = try Self.train(workers: 2, steps: 6, syncEvery: 1, outer: OuterOptimizer(kind: .sgd, learningRate: 0.5, momentum: 0))
        #expect(relativeDifference(halved[0].parameters, plain[0].parameters) > 1e-3)
    }

    /// H = 4: inner steps send no reducer bytes, round ends do; replicas differ inside a round and
    /// agree after it; both outer optimizers lower the loss.
    @Test(arguments: [OuterOptimizer.averaging, .diloco])
    func roundsTrainAndCommunicateOnlyAtTheirEnds(outer: OuterOptimizer) throws {
        let runs = try Self.train(workers: 2, steps: 24, syncEvery: 4, outer: outer)
        let payloads = runs[0].payloads
        for (step, bytes) in payloads.enumerated() {
            if (step + 1) % 4 == 0 { #expect(bytes > 0, "step \(step) ends a round") } else { #expect(bytes == 0, "step \(step)") }
        }
        let early = runs[0].losses.prefix(4).reduce(0, +) / 4, late = runs[0].losses.suffix(4).reduce(0, +) / 4
        #expect(late < 0.6 * early, "\(outer): loss \(early) → \(late)")
        #expect(runs[1].parameters == runs[0].parameters)
        #expect(runs[0].roundStart == runs[0].parameters)
    }

    /// A checkpoint written mid-round (step 6 of rounds of 4) holds each rank's own replica and
    /// inner optimizer, θ₀, the outer momentum and the reducer's error memory: resuming from it
    /// ends bit for bit where the uninterrupted run ends.
    @Test func resumeFromTheMiddleOfARoundIsBitIdentical() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("localsgd-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let reducer: () throws -> any GradientReducer = { try PowerSGD(PowerSGD.Options(rank: 1, seed: 3)) }
        let full = try Self.train(workers: 2, steps: 10, syncEvery: 4, outer: .diloco, reducer: reducer,
                                  checkpointEvery: 6, directory: directory)
        let resumed = try Self.train(workers: 2, steps: 10, syncEvery: 4, outer: .diloco, reducer: reducer,
                                     directory: directory, resumeFrom: 6)
        for rank in 0..<2 {
            #expect(resumed[rank].parameters == full[rank].parameters, "rank \(rank)")
            #expect(resumed[rank].losses == Array(full[rank].losses.suffix(4)), "rank \(rank)")
        }
    }

    /// The reducer's error memory carries across rounds: with PowerSGD rank 1 and outer plain
    /// averaging, θ₀ moves by exactly the reduced Δ's, so Σ_rounds reduced Δ + mean_w E_w equals
    /// Σ_rounds mean_w Δ_w (what exact averaging would apply) — only if no round dropped the memory.
    @Test func errorMemoryPersistsAcrossRounds() throws {
        final class Recorder: GradientReducer, @unchecked Sendable {
            var inner: PowerSGD
            var exactSum: [Tensor] = [], appliedSum: [Tensor] = []
            init() throws { inner = try PowerSGD(PowerSGD.Options(rank: 1, seed: 3)) }
            var name: String { inner.name }
            func reduce(_ gradients: inout [Tensor], over group: any Communicator) throws -> ReductionStats {
                var exact = gradients
                for i in exact.indices { try exact[i].withUnsafeMutableBufferPointer { try group.allReduce($0, operation: .mean) } }
                let stats = try inner.reduce(&gradients, over: group)
                accumulate(exact, into: &exactSum)
                accumulate(gradients, into: &appliedSum)
                return stats
            }
            func accumulate(_ values: [Tensor], into sum: inout [Tensor]) {
                if sum.isEmpty { sum = values.map { Tensor(shape: $0.shape) } }
                for i in sum.indices { for j in 0..<sum[i].count { sum[i].scalars[j] += values[i].scalars[j] } }
            }
            func saveState(to archive: inout StateWriter) { inner.saveState(to: &archive) }
            func restoreState(from archive: inout StateReader) throws { try inner.restoreState(from: &archive) }
        }
        let results = try InProcessGroup.run(workers: 2) { group -> ([Tensor], [Tensor], [Float], MatrixLayout) in
            let work = LocalSGDWorkload(inner: DataParallelTrainerTests.workload(), syncEvery: 3, outer: .averaging)
            let recorder = try Recorder()
            var reducer: any GradientReducer = recorder
            try DataParallelTrainer(options: .init(totalSteps: 12)).run(workload: work, reducer: &reducer, group: group)
            return (recorder.exactSum, recorder.appliedSum, recorder.inner.errorMemory, (recorder.inner.layout as MatrixLayout?)!)
        }
        var lhs = results[0].1
        for (index, entry) in results[0].3.entries.enumerated() where entry.isCompressed {
            for j in 0..<entry.count { lhs[index].scalars[j] += (results[0].2[entry.errorOffset + j] + results[1].2[entry.errorOffset + j]) / 2 }
        }
        let difference = relativeDifference(lhs, results[0].0)
        #expect(difference < 1e-4, "relative difference \(difference)")
        #expect(relativeDifference(results[0].1, results[0].0) > 1e-3, "rank 1 leaves a residual for the memory to carry")
    }

    @Test func outerOptimizerSpecifications() throws {
        #expect(try OuterOptimizer(parsing: "nesterov") == .diloco)
        #expect(try OuterOptimizer(parsing: "sgd:lr=1") == .averaging)
        #expect(try OuterOptimizer(parsing: "sgd:lr=0.5,momentum=0.3") == OuterOptimizer(kind: .sgd, learningRate: 0.5, momentum: 0.3))
        for bad in ["adam", "nesterov:lr=-1", "nesterov:momentum=1", "sgd:beta=2", "sgd:lr"] {
            #expect(throws: OuterOptimizerError.self, "\(bad)") { try OuterOptimizer(parsing: bad) }
        }
    }
}
