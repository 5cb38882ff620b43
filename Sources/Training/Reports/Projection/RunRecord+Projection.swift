/// When a run first reached a target accuracy or perplexity.
public struct TimeToTarget: Sendable, Equatable {
    /// The first evaluation whose value reaches the target.
    public var evaluation: EvaluationRecord
    /// Σ measured step seconds before that evaluation.
    public var measuredSeconds: Double
    /// Σ projected step seconds before that evaluation, on the chosen projection target.
    public var projectedSeconds: Double
}

extension RunRecord {
    /// The metric of the run's evaluations (nil before the first evaluation).
    public var metric: EvaluationPart.Metric? { evaluations.first?.metric }

    /// Mean measured seconds per step (compute + compression + communication + optimizer); 0 without steps.
    public var measuredSecondsPerStep: Double { mean(steps.map(\.measuredSeconds)) }

    /// Mean projected seconds per step on `target` (see `ProjectionTarget.stepSeconds`); 0 without steps.
    public func projectedSecondsPerStep(on target: ProjectionTarget) -> Double {
        mean(steps.map(target.stepSeconds))
    }

    /// Mean payload bytes per worker per step.
    public var payloadBytesPerStep: Double { mean(steps.map { Double($0.payloadBytes) }) }
    /// Mean bytes sent per worker per step, at the run's worker count.
    public var bytesSentPerStep: Double { mean(steps.map { Double($0.bytesSent) }) }

    /// Σ uncompressed / Σ payload over the run; nil when nothing was sent.
    public var compressionRatio: Double? {
        let payload = steps.reduce(0) { $0 + $1.payloadBytes }
        return payload > 0 ? Double(steps.reduce(0) { $0 + $1.uncompressedBytes }) / Double(payload) : nil
    }

    /// Σ measured seconds of the steps numbered below `stepCount`.
    public func measuredElapsed(beforeStep stepCount: Int) -> Double {
        steps.lazy.filter { $0.step < stepCount }.reduce(0) { $0 + $1.measuredSeconds }
    }

    /// Σ projected seconds on `target` of the steps numbered below `stepCount`.
    public func projectedElapsed(beforeStep stepCount: Int, on target: ProjectionTarget) -> Double {
        steps.lazy.filter { $0.step < stepCount }.reduce(0) { $0 + target.stepSeconds($1) }
    }

    /// The first evaluation reaching `target` (≥ for accuracy, ≤ for perplexity), with the measured
    /// and projected training time before it; nil if no evaluation reaches it.
    ///
    /// No interpolation between evaluations: the time reported is that of the first evaluation at
    /// or past the target, an upper bound on the true crossing (evaluate more often for a tighter one).
    /// The projection keeps the run's step count: it re-prices each step on `projection` but does
    /// not model how a different worker count would change the steps needed.
    public func timeToTarget(_ target: Double, projection: ProjectionTarget) -> TimeToTarget? {
        guard let hit = evaluations.first(where: { $0.metric.reaches($0.value, target: target) }) else { return nil }
        return TimeToTarget(evaluation: hit, measuredSeconds: measuredElapsed(beforeStep: hit.step),
                            projectedSeconds: projectedElapsed(beforeStep: hit.step, on: projection))
    }
}

private func mean(_ values: [Double]) -> Double {
    values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
}
