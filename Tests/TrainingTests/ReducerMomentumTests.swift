import Collectives
import Foundation
import GradientCompression
import LinearAlgebra
import NeuralNetworks
import Testing
@testable import Training

/// Reducers whose output already carries momentum (DGC, Signum) get an optimizer without
/// momentum of its own, and DGC's warm-up learns the epoch length from the loop.
@Suite struct ReducerMomentumTests {
    static func workload(momentum: Float, learningRate: Float = 0.1) -> ClassifierWorkload {
        let model = MLP.make(inputShape: [1, 6, 6], hidden: [16], classes: 4, seed: 7)
        let optimizer = SGD(options: .init(momentum: momentum, nesterov: true), schedule: .constant(learningRate))
        return ClassifierWorkload(model: model, optimizer: optimizer, data: SyntheticImages(), batchSize: 8)
    }

    static let momentumReducers: [@Sendable () throws -> any GradientReducer] = [
        { try MajorityVoteReducer(momentum: 0.9) }, { try DeepGradientCompression(density: 0.1) },
    ]

    @Test(arguments: 0..<2)
    func theLoopRefusesAnOptimizerWithMomentumUnderAReducerThatAppliesIt(index: Int) throws {
        #expect(try Self.momentumReducers[index]().appliesMomentum)
        #expect {
            _ = try InProcessGroup.run(workers: 2) { group in
                var reducer = try Self.momentumReducers[index]()
                try DataParallelTrainer(options: .init(totalSteps: 2)).run(workload: Self.workload(momentum: 0.9),
                                                                            reducer: &reducer, group: group)
            }
        } throws: { error in
            guard case let .doubleMomentum(_, momentum) = (error as? WorkerError)?.underlying as? TrainingError else { return false }
            return momentum == 0.9
        }
    }

    /// Under Signum every step moves each parameter by exactly −γ·vote, vote ∈ {−1, 0, +1}: the
    /// loop adds no momentum of its own (with it, later steps would be γ(v + μm), other sizes).
    @Test func signumStepsAreTheLearningRateTimesTheVote() throws {
        let lr: Float = 0.01
        let moves = try InProcessGroup.run(workers: 2) { group -> [[Float]] in
            let work = Self.workload(momentum: 0, learningRate: lr)
            var reducer: any GradientReducer = try MajorityVoteReducer(momentum: 0.9)
            var before = work.model.parameters.flatMap(\.value.scalars)
            var moves: [[Float]] = []
            try DataParallelTrainer(options: .init(totalSteps: 3)).run(workload: work, reducer: &reducer, group: group, onStep: { _ in
                let after = work.model.parameters.flatMap(\.value.scalars)
                moves.append(zip(before, after).map { $0 - $1 })
                before = after
            })
            return moves
        }
        #expect(moves[0].count == 3)
        for step in moves[0] {
            for move in step {
                // x − γv rounds in fp32, so the move is γ to within an ulp of the parameter.
                #expect(move == 0 || abs(abs(move) - lr) < 1e-6, "a step of \(move) is not ±γ or 0")
            }
        }
    }

    /// DGC's sparsity warm-up counts epochs; the loop tells it how long one is, so the first
    /// steps send the warm-up density (25 % at density 0.001 over 4 epochs), not 0.1 %.
    @Test func dgcWarmupUsesTheLoopsEpochLength() throws {
        let results = try InProcessGroup.run(workers: 2) { group -> (Int, Int, [Int]) in
            let work = Self.workload(momentum: 0)
            var reducer: any GradientReducer = try DeepGradientCompression(density: 0.001)
            var payloads: [Int] = []
            try DataParallelTrainer(options: .init(totalSteps: 2)).run(workload: work, reducer: &reducer, group: group,
                                                                        onStep: { payloads.append($0.reduction.payloadBytes) })
            return ((reducer as! DeepGradientCompression).stepsPerEpoch, work.stepsPerEpoch(workers: 2), payloads)
        }
        let (adopted, loopEpoch, payloads) = results[0]
        #expect(adopted == loopEpoch && loopEpoch > 0)
        let elements = Self.workload(momentum: 0).gradients.map(\.count)
        // 8 bytes per sent (value, index) pair; density 0.2512 in epoch 0.
        let warmup = 8 * elements.map { Int((0.2512 * Double($0)).rounded(.up)) }.reduce(0, +)
        #expect(abs(payloads[0] - warmup) <= 8 * elements.count, "first step sent \(payloads[0]) bytes, warm-up \(warmup)")
    }

    /// A given `steps-per-epoch` is kept; `warmup-epochs=0` turns the warm-up off.
    @Test func dgcKeepsAGivenEpochLength() throws {
        var given = try DeepGradientCompression(density: 0.001, stepsPerEpoch: 5)
        given.prepare(stepsPerEpoch: 50)
        #expect(given.stepsPerEpoch == 5)
        var off = try DeepGradientCompression(density: 0.001, warmupEpochs: 0)
        off.prepare(stepsPerEpoch: 50)
        #expect(off.density(atStep: 0) == 0.001)
    }

    /// The session (what `train` and `compare` run) builds the optimizer without momentum for
    /// such reducers, and with the configured momentum otherwise.
    @Test func theSessionTurnsTheOptimizersMomentumOffForSignumAndDGC() throws {
        var c = ExperimentConfiguration()
        c.model = .mlp; c.dataset = .fashionMNIST; c.steps = 2; c.batchSize = 16; c.width = 16; c.momentum = 0.9
        let experiment = try Experiment(c)
        #expect(try experiment.makeWorkload(rank: 0, workers: 2, reducerAppliesMomentum: true).optimizerMomentum == 0)
        #expect(try experiment.makeWorkload(rank: 0, workers: 2).optimizerMomentum == 0.9)
        for reducer in ["signum", "dgc"] {
            var session = try TrainingSession(experiment: experiment, reducer: try ReducerSpecification(parsing: reducer),
                                              network: "10gbit", projectedWorkers: 16)
            session.evaluates = false
            let steps = try InProcessGroup.run(workers: 2) { try session.run(group: $0).run.steps.count }
            #expect(steps[0] == 2, "\(reducer)")
        }
    }
}
