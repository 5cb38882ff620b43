/// One evaluation on the test set (one JSON line, `"record": "evaluation"`).
///
/// `step` counts the optimizer steps done before the evaluation (an evaluation after the first
/// 100 steps has `step == 100` and follows the step records 0…99). Elapsed times and byte totals
/// are those of the steps before it; evaluation time itself is not counted.
public struct EvaluationRecord: Sendable, Codable, Equatable {
    public var step: Int
    public var epoch: Int
    public var metric: EvaluationPart.Metric
    /// Fraction correct (accuracy) or perplexity.
    public var value: Double
    /// Σ `StepRecord.measuredSeconds` of the steps before this evaluation.
    public var elapsedSeconds: Double
    /// Σ `StepRecord.projectedSeconds` of the steps before this evaluation (the run's projection target).
    public var projectedElapsedSeconds: Double
    public var cumulativePayloadBytes: Int
    public var cumulativeBytesSent: Int

    public init(step: Int, epoch: Int, metric: EvaluationPart.Metric, value: Double,
                elapsedSeconds: Double, projectedElapsedSeconds: Double,
                cumulativePayloadBytes: Int, cumulativeBytesSent: Int) {
        self.step = step
        self.epoch = epoch
        self.metric = metric
        self.value = value
        self.elapsedSeconds = elapsedSeconds
        self.projectedElapsedSeconds = projectedElapsedSeconds
        self.cumulativePayloadBytes = cumulativePayloadBytes
        self.cumulativeBytesSent = cumulativeBytesSent
    }
}

extension EvaluationPart.Metric {
    /// Accuracy improves upwards, perplexity downwards.
    public var higherIsBetter: Bool { self == .accuracy }

    /// Whether `value` is at least as good as `target` in this metric's direction.
    public func reaches(_ value: Double, target: Double) -> Bool {
        higherIsBetter ? value >= target : value <= target
    }
}
