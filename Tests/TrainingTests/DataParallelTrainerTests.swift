import Collectives
import Foundation
import GradientCompression
import LinearAlgebra
import NeuralNetworks
import Testing
@testable import Training

@Suite struct DataParallelTrainerTests {
    static func workload(seed: UInt64 = 7, learningRate: Float = 0.1, momentum: Float = 0.9) -> ClassifierWorkload {
        let model = MLP.make(inputShape: [1, 6, 6], hidden: [16], classes: 4, seed: seed)
        let optimizer = SGD(options: .init(momentum: momentum, nesterov: true, weightDecay: 1e-4),
                            schedule: .constant(learningRate))
        return ClassifierWorkload(model: model, optimizer: optimizer, data: SyntheticImages(), batchSize: 8)
    }

    /// Runs `steps` steps on `workers` threads; returns rank 0's losses, the final evaluation and
    /// every rank's final parameters.
    static func train(workers: Int, steps: Int, reducer: @escaping () -> any GradientReducer,
                      startFrom checkpoint: (URL, Int)? = nil, checkpointEvery: Int = 0, directory: URL? = nil,
                      learningRate: Float = 0.1)
        throws -> [(losses: [Double], accuracy: Double, parameters: [Tensor])] {
        try InProcessGroup.run(workers: workers) { group in
            let work = workload(learningRate: learningRate)
            var r = reducer()
            var start = 0
            if let (root, step) = checkpoint {
                start = try Checkpoint.restore(from: root, step: step, workload: work, reducer: &r, group: group)
            }
            let trainer = DataParallelTrainer(options: .init(totalSteps: steps, checkpointEvery: checkpointEvery,
                                                              checkpointDirectory: directory))
            var losses: [Double] = []
            var accuracy = 0.0
            try trainer.run(workload: work, reducer: &r, group: group, startStep: start,
                            onStep: { losses.append($0.loss) }, onEvaluation: { accuracy = $0.value })
            return (losses, accuracy, work.model.parameters.map(\.value))
        }
    }

    @Test func sgdTrainingLowersTheLossAndKeepsReplicasIdentical() throws {
        let results = try Self.train(workers: 4, steps: 24, reducer: { UncompressedReducer() })
        let losses = results[0].losses
        #expect(losses.count == 24)
        let early: Double = losses.prefix(4).reduce(0, +) / 4
        let late: Double = losses.suffix(4).reduce(0, +) / 4
        #expect(late < 0.5 * early)
        #expect(results[0].accuracy > 0.9)
        for r in 1..<4 {
            #expect(results[r].parameters == results[0].parameters, "replica \(r) drifted")
            #expect(results[r].losses == losses)
        }
    }

    /// The same seed and worker count give the same numbers, bit for bit.
    @Test func trainingIsDeterministic() throws {
        let a = try Self.train(workers: 2, steps: 6, reducer: { UncompressedReducer() })
        let b = try Self.train(workers: 2, steps: 6, reducer: { UncompressedReducer() })
        #expect(a[0].losses == b[0].losses && a[0].parameters == b[0].parameters)
    }

    /// Stopping at step 5 and resuming from its checkpoint gives the uninterrupted run's numbers.
    @Test func resumeFromACheckpointIsBitIdentical() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let full = try Self.train(workers: 2, steps: 10, reducer: { UncompressedReducer() })
        _ = try Self.train(workers: 2, steps: 5, reducer: { UncompressedReducer() }, checkpointEvery: 5, directory: directory)
        #expect(try Checkpoint.latestStep(in: directory) == 5)
        let resumed = try Self.train(workers: 2, steps: 10, reducer: { UncompressedReducer() }, startFrom: (directory, 5))
        #expect(resumed[0].losses == Array(full[0].losses.suffix(5)))
        #expect(resumed[0].parameters == full[0].parameters)
        #expect(resumed[1].parameters == full[1].parameters)
    }

    @Test func aNonFiniteLossStopsWithTheStepAndACheckpoint() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nan-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        do {
            _ = try Self.train(workers: 2, steps: 50, reducer: { UncompressedReducer() }, directory: directory, learningRate: 1e12)
            Issue.record("training with a learning rate of 1e12 should have stopped")
        } catch let error as WorkerError {
            let message = "\(error.underlying)"
            #expect(message.contains("training stopped at step"))
            #expect(message.contains("not finite"))
            #expect(message.contains(directory.path))
        }
    }

    @Test func aCheckpointFromAnotherWorkerCountIsRefused() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        _ = try Self.train(workers: 2, steps: 2, reducer: { UncompressedReducer() }, checkpointEvery: 2, directory: directory)
        do {
            _ = try Self.train(workers: 1, steps: 4, reducer: { UncompressedReducer() }, startFrom: (directory, 2))
            Issue.record("a checkpoint of 2 workers was restored by 1")
        } catch let error as WorkerError {
            guard case .configurationChanged(let file, let differences)? = error.underlying as? TrainingError else {
                Issue.record("expected TrainingError.configurationChanged, got \(error.underlying)")
                return
            }
            #expect(file == directory.appendingPathComponent("step-2/rank-0.state").path)
            #expect(differences == [.init(key: "workers", saved: "2", current: "1")])
        }
    }
}
