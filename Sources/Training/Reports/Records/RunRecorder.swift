import GradientCompression

/// Turns the trainer's per-step and per-evaluation numbers into `StepRecord`s and
/// `EvaluationRecord`s, keeping the running totals (bytes, measured and projected elapsed time),
/// and writes each to the log as it comes. Call it on one worker only (rank 0).
public final class RunRecorder {
    public private(set) var run: RunRecord
    private let log: RunLogWriter?
    private var elapsedSeconds = 0.0
    private var projectedElapsedSeconds = 0.0

    /// A new run: writes the `"run"` line to `log`.
    public init(settings: RunSettings, log: RunLogWriter? = nil) throws {
        run = RunRecord(settings: settings)
        self.log = log
        try log?.write(.run(settings))
    }

    /// A run resumed from a checkpoint at `step`: keeps `previous`'s records before it (read back
    /// from the log with `RunLog.read`) and continues its totals. `log` should be opened for appending.
    public init(resuming previous: RunRecord, atStep step: Int, log: RunLogWriter? = nil) {
        run = previous
        run.rewind(toStep: step)
        self.log = log
        elapsedSeconds = run.steps.reduce(0) { $0 + $1.measuredSeconds }
        projectedElapsedSeconds = run.steps.reduce(0) { $0 + $1.projectedSeconds }
    }

    /// Records one step. Times are the slowest worker's; `reduction` is this worker's reducer stats.
    @discardableResult
    public func recordStep(step: Int, epoch: Int, loss: Double, learningRate: Double? = nil,
                           computeSeconds: Double, compressionSeconds: Double, communicationSeconds: Double,
                           optimizerSeconds: Double, skewSeconds: Double? = nil, reduction: ReductionStats,
                           epsilon: Double? = nil, overlap: (wall: Double, communicationThread: Double, exposed: Double)? = nil)
        throws -> StepRecord {
        let previous = run.steps.last
        var record = StepRecord(
            step: step, epoch: epoch, loss: loss, learningRate: learningRate,
            payloadBytes: reduction.payloadBytes, bytesSent: reduction.bytesSent,
            bytesReceived: reduction.bytesReceived, uncompressedBytes: reduction.uncompressedBytes,
            cumulativePayloadBytes: (previous?.cumulativePayloadBytes ?? 0) + reduction.payloadBytes,
            cumulativeBytesSent: (previous?.cumulativeBytesSent ?? 0) + reduction.bytesSent,
            computeSeconds: computeSeconds, compressionSeconds: compressionSeconds,
            communicationSeconds: communicationSeconds, optimizerSeconds: optimizerSeconds,
            projectedSeconds: 0, collectives: reduction.collectives)
        record.skewSeconds = skewSeconds
        (record.wallSeconds, record.communicationThreadSeconds, record.exposedCommunicationSeconds)
            = (overlap?.wall, overlap?.communicationThread, overlap?.exposed)
        record.epsilon = epsilon.flatMap { $0.isFinite ? $0 : nil }
        record.projectedSeconds = run.settings.projection.stepSeconds(record)
        elapsedSeconds += record.measuredSeconds
        projectedElapsedSeconds += record.projectedSeconds
        run.steps.append(record)
        try log?.write(.step(record))
        return record
    }

    /// Records an evaluation made after `step` optimizer steps.
    @discardableResult
    public func recordEvaluation(step: Int, epoch: Int, metric: EvaluationPart.Metric,
                                 value: Double) throws -> EvaluationRecord {
        let last = run.steps.last
        let record = EvaluationRecord(step: step, epoch: epoch, metric: metric, value: value,
                                      elapsedSeconds: elapsedSeconds, projectedElapsedSeconds: projectedElapsedSeconds,
                                      cumulativePayloadBytes: last?.cumulativePayloadBytes ?? 0,
                                      cumulativeBytesSent: last?.cumulativeBytesSent ?? 0)
        run.evaluations.append(record)
        try log?.write(.evaluation(record))
        return record
    }
}

extension RunRecorder {
    /// Records a step as `DataParallelTrainer` reports it (call from `onStep` on rank 0).
    @discardableResult
    public func record(_ step: DataParallelTrainer.Step) throws -> StepRecord {
        try recordStep(step: step.step, epoch: step.epoch, loss: step.loss, learningRate: Double(step.learningRate),
                       computeSeconds: step.computeSeconds, compressionSeconds: step.compressionSeconds,
                       communicationSeconds: step.communicationSeconds, optimizerSeconds: step.optimizerSeconds,
                       skewSeconds: step.skewSeconds, reduction: step.reduction, epsilon: step.epsilon,
                       overlap: step.wallSeconds.map { ($0, step.communicationThreadSeconds ?? 0, step.exposedCommunicationSeconds ?? 0) })
    }

    /// Records an evaluation as `DataParallelTrainer` reports it (call from `onEvaluation` on rank 0).
    @discardableResult
    public func record(_ evaluation: DataParallelTrainer.Evaluation) throws -> EvaluationRecord {
        try recordEvaluation(step: evaluation.step, epoch: evaluation.epoch, metric: evaluation.metric,
                             value: evaluation.value)
    }
}
