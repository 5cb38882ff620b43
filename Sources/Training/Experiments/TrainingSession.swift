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
    /// Checkpoints to keep in `checkpointDirectory` (older ones are removed); 0 keeps all.
    public var keepCheckpoints = 3
    public var resume = false
    /// Rank 0 writes JSON lines here (see docs/reports.md for the fields).
    public var logFile: URL?
    /// Intra-op threads of this worker's model.
    public var threads = 1
    /// Evaluate every this many steps; nil uses the configuration's `evaluateEvery`.
    public var evaluateEvery: Int?
    /// Whether to evaluate at all (off for profiling runs, which need only the step records).
    public var evaluates = true
    /// `--overlap` with `--bucket-mb`: the bucket capacity in bytes (nil: no overlap). Not in the
    /// trajectory settings: any bucket layout gives the same run.
    public var overlapBucketBytes: Double?

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

    /// The settings that fix a run's trajectory, by command-line flag (without dashes): every
    /// field of the configuration except where the data live, how often to evaluate and the
    /// length (which may change on a resume), plus the reducer and the worker count. A checkpoint
    /// records them; resuming with any of them changed is refused.
    public static func trajectorySettings(_ configuration: ExperimentConfiguration, reducer: String) -> [String: String] {
        let excluded: Set<String> = ["dataDirectory", "evaluateEvery", "steps", "epochs"]
        var settings: [String: String] = ["reducer": reducer]
        for child in Mirror(reflecting: configuration).children {
            guard let label = child.label, !excluded.contains(label) else { continue }
            // Runs without DP record no `dp` key, so their checkpoints stay resumable.
            if label == "dp" || label == "localSGD", describe(child.value) == "none" { continue }
            settings[flagName(label)] = describe(child.value)
        }
        return settings
    }

    /// `batchSize` → `batch-size`.
    static func flagName(_ property: String) -> String {
        property.reduce(into: "") { name, c in
            if c.isUppercase { name += "-" + c.lowercased() } else { name.append(c) }
        }
    }

    private static func describe(_ value: Any) -> String {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .optional { return mirror.children.first.map { describe($0.value) } ?? "none" }
        return "\(value)"
    }

    /// Runs this worker, with its own reducer built from the specification (reducers keep
    /// per-worker state). `onStep` / `onEvaluation` are called on rank 0 with each record, and
    /// `onNotice` with what the run does differently from what was asked: an optimizer without the
    /// configured momentum for a reducer that applies its own, and what a resume does (from which
    /// step to which, a changed length).
    public func run(group: any Communicator, onStep: (StepRecord, Int) -> Void = { _, _ in },
                    onEvaluation: (EvaluationRecord) -> Void = { _ in },
                    onNotice: (String) -> Void = { _ in }) throws -> Result {
        var reducer = try ReducerCatalog.make(self.reducer, seed: experiment.configuration.seed)
        var workload = try experiment.makeWorkload(rank: group.rank, workers: group.size, threads: threads,
                                                   reducerAppliesMomentum: reducer.appliesMomentum)
        let schedule = try experiment.schedule(workers: group.size)
        let total = schedule.totalSteps
        if let dp = experiment.configuration.dp {
            workload = try DifferentiallyPrivateWorkload.make(workload, settings: dp, reducer: self.reducer.name, totalSteps: total,
                                                              workers: group.size, seed: experiment.configuration.seed)
        }
        if let local = experiment.configuration.localSGD {
            workload = LocalSGDWorkload(inner: workload, syncEvery: local.syncEvery, outer: local.outer)
        }
        let trajectory = Self.trajectorySettings(experiment.configuration, reducer: reducer.name)
        func notice(_ text: String) { if group.rank == 0 { onNotice(text) } }
        if reducer.appliesMomentum && experiment.configuration.momentum != 0 {
            notice("note: \(reducer.name) applies momentum itself, so the optimizer runs without momentum "
                   + "(--momentum \(experiment.configuration.momentum) is not applied)")
        }
        let c = experiment.configuration
        let settings = RunSettings(reducer: reducer.name, model: c.model.rawValue, dataset: c.dataset.rawValue, workers: group.size,
                                   batchSizePerWorker: c.batchSize, seed: c.seed, projection: projection)
        let parameterCount = workload.gradients.reduce(0) { $0 + $1.count }
        var start = 0
        if let directory = checkpointDirectory {
            Checkpoint.removeTemporaryFiles(in: directory, rank: group.rank)
        }
        if resume, let directory = checkpointDirectory {
            guard let step = try Checkpoint.latestStep(in: directory) else {
                throw TrainingError.checkpoint("--resume: no checkpoint in \(directory.path) (expected a 'latest' file)")
            }
            let header = try Checkpoint.restoreHeader(from: directory, step: step, workload: workload, reducer: &reducer,
                                                      group: group, settings: trajectory)
            start = header.step
            if total <= start {
                notice("nothing to do: the checkpoint in \(directory.path) is at step \(start), and this run ends at step "
                       + "\(total) (--steps/--epochs); give more steps to train on")
                return Result(run: RunRecord(settings: settings), parameterCount: parameterCount)
            }
            var text = "resuming from step \(start) to step \(total) (checkpoint \(Checkpoint.directory(directory, step: start).path))"
            if header.totalSteps != total {
                text += "; the checkpoint's run was \(header.totalSteps) steps long"
                text += experiment.configuration.schedule == .constant
                    ? " (constant learning rate: the steps already taken are unaffected)"
                    : ", and the \(experiment.configuration.schedule.rawValue) learning-rate schedule now spans \(total) steps, "
                        + "so the rates from step \(start) on differ from those of the original run"
            }
            notice(text)
        }
        var recorder: RunRecorder?
        if group.rank == 0 {
            if start > 0, let logFile, FileManager.default.fileExists(atPath: logFile.path),
               let previous = try RunLog.read(logFile).last {
                recorder = RunRecorder(resuming: previous, atStep: start, log: try RunLogWriter(url: logFile, append: true))
            } else {
                recorder = try RunRecorder(settings: settings, log: try logFile.map { try RunLogWriter(url: $0) })
            }
        }
        let evaluateEvery = self.evaluateEvery ?? (c.evaluateEvery > 0 ? c.evaluateEvery : schedule.stepsPerEpoch)
        var options = DataParallelTrainer.Options(totalSteps: total, evaluateEvery: evaluateEvery,
                                                  checkpointEvery: checkpointEvery, checkpointDirectory: checkpointDirectory)
        options.evaluates = evaluates
        options.keepCheckpoints = keepCheckpoints
        options.settings = trajectory
        options.overlapBucketBytes = overlapBucketBytes
        let trainer = DataParallelTrainer(options: options)
        try trainer.run(workload: workload, reducer: &reducer, group: group, startStep: start, onStep: { step in
            if let record = try recorder?.record(step) { onStep(record, total) }
        }, onEvaluation: { evaluation in
            if let record = try recorder?.record(evaluation) { onEvaluation(record) }
        })
        return Result(run: recorder?.run ?? RunRecord(settings: settings), parameterCount: parameterCount)
    }
}
