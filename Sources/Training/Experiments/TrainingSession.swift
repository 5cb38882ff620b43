import Collectives
import Foundation
import GradientCompression
import LinearAlgebra

/// One worker's whole run of an experiment with one reducer over a communicator: builds the
/// replica, restores a checkpoint when asked, runs `DataParallelTrainer`, and (on rank 0)
/// records every step and evaluation with a `RunRecorder`. The same code runs on an in-process
/// thread and on an MPI rank.
public struct TrainingSession {
    public var experiment: Experiment
    public var reducer: ReducerSpecification
    public var projection: ProjectionTarget
    public var checkpointDirectory: URL?
    public var checkpointEvery = 0
    public var resume = false
    /// Rank 0 writes JSON lines here (see docs/reports.md for the fields).
    public var logFile: URL?
    /// Intra-op threads of this worker's model.
    public var threads = 1
    /// Evaluate every this many steps; nil uses the configuration's `evaluateEvery`.
    public var evaluateEvery: Int?
    /// Whether to evaluate at all (off for profiling runs, which need only the step records).
    public var evaluates = true

    public init(experiment: Experiment, reducer: ReducerSpecification, network: String, projectedWorkers: Int) throws {
        self.experiment = experiment
        self.reducer = reducer
        self.projection = try ProjectionTarget(network: network, workers: projectedWorkers)
    }

    /// What a finished worker returns: rank 0's records (empty on other ranks) and the model size.
    public struct Result {
        public var run: RunRecord
        public var parameterCount: Int
    }

    /// Runs this worker. `onStep` / `onEvaluation` are called on rank 0 with each record.
    public func run(group: any Communicator, onStep: (StepRecord, Int) -> Void = { _, _ in },
                    onEvaluation: (EvaluationRecord) -> Void = { _ in }) throws -> Result {
        var reducer = try ReducerCatalog.make(self.reducer, seed: experiment.configuration.seed)
        let workload = try experiment.makeWorkload(rank: group.rank, workers: group.size, threads: threads,
                                                   reducerAppliesMomentum: reducer.appliesMomentum)
        let total = try experiment.totalSteps(workers: group.size)
        var start = 0
        if resume, let directory = checkpointDirectory {
            guard let step = Checkpoint.latestStep(in: directory) else {
                throw TrainingError.checkpoint("--resume: no checkpoint in \(directory.path) (expected a 'latest' file)")
            }
            start = try Checkpoint.restore(from: directory, step: step, workload: workload, reducer: &reducer, group: group)
        }
        let c = experiment.configuration
        let settings = RunSettings(reducer: reducer.name, model: c.model, dataset: c.dataset, workers: group.size,
                                   batchSizePerWorker: c.batchSize, seed: c.seed, projection: projection)
        var recorder: RunRecorder?
        if group.rank == 0 {
            if start > 0, let logFile, FileManager.default.fileExists(atPath: logFile.path),
               let previous = try RunLog.read(logFile).last {
                recorder = RunRecorder(resuming: previous, atStep: start, log: try RunLogWriter(url: logFile, append: true))
            } else {
                recorder = try RunRecorder(settings: settings, log: try logFile.map { try RunLogWriter(url: $0) })
            }
        }
        let stepsPerEpoch = workload.stepsPerEpoch(workers: group.size)
        let evaluateEvery = self.evaluateEvery ?? (c.evaluateEvery > 0 ? c.evaluateEvery : stepsPerEpoch)
        var options = DataParallelTrainer.Options(totalSteps: total, evaluateEvery: evaluateEvery,
                                                  checkpointEvery: checkpointEvery, checkpointDirectory: checkpointDirectory)
        options.evaluates = evaluates
        let trainer = DataParallelTrainer(options: options)
        let parameterCount = workload.gradients.reduce(0) { $0 + $1.count }
        try trainer.run(workload: workload, reducer: &reducer, group: group, startStep: start, onStep: { step in
            if let record = try recorder?.record(step) { onStep(record, total) }
        }, onEvaluation: { evaluation in
            if let record = try recorder?.record(evaluation) { onEvaluation(record) }
        })
        return Result(run: recorder?.run ?? RunRecord(settings: settings), parameterCount: parameterCount)
    }
}
