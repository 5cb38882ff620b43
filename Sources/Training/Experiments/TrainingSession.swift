import Collectives
import Dispatch
import Foundation
import GradientCompression
import LinearAlgebra

/// One worker's whole run of an experiment with one reducer over a communicator: builds the
/// replica, restores a checkpoint when asked, runs `DataParallelTrainer`, and turns its steps
/// and evaluations into records. The same code runs on an in-process thread and on an MPI rank.
public struct TrainingSession {
    public var experiment: Experiment
    public var reducer: ReducerSpecification
    public var network: NetworkModel
    public var networkName: String
    public var projectedWorkers: Int
    public var checkpointDirectory: URL?
    public var checkpointEvery = 0
    public var resume = false
    /// Intra-op threads of this worker's model.
    public var threads = 1

    public init(experiment: Experiment, reducer: ReducerSpecification, network: String, projectedWorkers: Int) throws {
        self.experiment = experiment
        self.reducer = reducer
        self.network = try NetworkModel(parsing: network)
        self.networkName = network
        self.projectedWorkers = projectedWorkers
    }

    /// Runs this worker. `onStep`/`onEvaluation` see every record (call them on rank 0 to log).
    public func run(group: any Communicator, onStep: (StepRecord, Int) -> Void = { _, _ in },
                    onEvaluation: (EvaluationRecord) -> Void = { _ in }) throws -> RunRecord {
        let workload = try experiment.makeWorkload(rank: group.rank, workers: group.size, threads: threads)
        var reducer = try ReducerCatalog.make(self.reducer, seed: experiment.configuration.seed)
        let total = try experiment.totalSteps(workers: group.size)
        var start = 0
        if resume, let directory = checkpointDirectory {
            guard let step = Checkpoint.latestStep(in: directory) else {
                throw TrainingError.checkpoint("--resume: no checkpoint in \(directory.path) (expected a 'latest' file)")
            }
            start = try Checkpoint.restore(from: directory, step: step, workload: workload, reducer: &reducer, group: group)
        }
        let stepsPerEpoch = workload.stepsPerEpoch(workers: group.size)
        let evaluateEvery = experiment.configuration.evaluateEvery > 0 ? experiment.configuration.evaluateEvery : stepsPerEpoch
        let trainer = DataParallelTrainer(options: .init(totalSteps: total, evaluateEvery: evaluateEvery,
                                                          checkpointEvery: checkpointEvery, checkpointDirectory: checkpointDirectory))
        let parameterCount = workload.gradients.reduce(0) { $0 + $1.count }
        var steps: [StepRecord] = [], evaluations: [EvaluationRecord] = []
        var cumulative = 0, elapsed = 0.0, projectedElapsed = 0.0
        var stepStart = now()
        try trainer.run(workload: workload, reducer: &reducer, group: group, startStep: start, onStep: { step in
            let wall = now() - stepStart
            cumulative += step.reduction.payloadBytes
            let record = StepRecord(step: step.step, epoch: step.epoch, loss: step.loss, learningRate: Double(step.learningRate),
                                    payloadBytes: step.reduction.payloadBytes, bytesSent: step.reduction.bytesSent,
                                    bytesReceived: step.reduction.bytesReceived, cumulativePayloadBytes: cumulative,
                                    compressionRatio: step.reduction.compressionRatio, computeSeconds: step.computeSeconds,
                                    compressionSeconds: step.compressionSeconds, communicationSeconds: step.communicationSeconds,
                                    wallSeconds: wall, relativeError: step.reduction.relativeError,
                                    collectives: step.reduction.collectives)
            elapsed += wall
            projectedElapsed += record.projectedSeconds(on: network, workers: projectedWorkers)
            steps.append(record)
            onStep(record, total)
            stepStart = now()
        }, onEvaluation: { evaluation in
            let record = EvaluationRecord(step: evaluation.step, epoch: evaluation.epoch, metric: evaluation.metric.rawValue,
                                          value: evaluation.value, elapsedSeconds: elapsed,
                                          projectedElapsedSeconds: projectedElapsed, cumulativePayloadBytes: cumulative)
            evaluations.append(record)
            onEvaluation(record)
            stepStart = now()  // evaluation time is not training time
        })
        return RunRecord(reducer: reducer.name, model: experiment.configuration.model, dataset: experiment.configuration.dataset,
                         workers: group.size, network: networkName, projectedWorkers: projectedWorkers,
                         parameterCount: parameterCount, steps: steps, evaluations: evaluations)
    }

    private func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }
}
