import Collectives

/// One training step as the log records it (one JSON line, `"type": "step"`).
public struct StepRecord: Sendable, Codable, Equatable {
    public var type = "step"
    public var step: Int
    public var epoch: Int
    /// Mean training loss over the workers' batches.
    public var loss: Double
    public var learningRate: Double
    /// Bytes this worker contributed to the reducer's collectives this step.
    public var payloadBytes: Int
    /// Bytes the collective algorithms sent and received for this worker.
    public var bytesSent: Int
    public var bytesReceived: Int
    /// Σ payloadBytes over the run so far.
    public var cumulativePayloadBytes: Int
    /// Uncompressed fp32 bytes / payload bytes.
    public var compressionRatio: Double
    /// Forward + backward CPU time of the slowest worker (what one dedicated core would take).
    public var computeSeconds: Double
    /// Reducer time outside collectives (compression, decompression, error feedback), slowest worker.
    public var compressionSeconds: Double
    /// Reducer time inside collectives as measured here, slowest worker.
    public var communicationSeconds: Double
    /// Wall time of the whole step on this machine.
    public var wallSeconds: Double
    /// ‖Δ − Δ'‖/‖Δ‖ of rank 0's error-corrected gradient, where the reducer reports it.
    public var relativeError: Double?
    /// The reducer's collectives this step (kind, payload), for projections to other networks.
    public var collectives: [TrafficRecord]

    /// compute + compression + the collectives' time on `network` with `workers` workers:
    /// the time per step of this run on that cluster (computation and communication do not overlap).
    public func projectedSeconds(on network: NetworkModel, workers: Int) -> Double {
        computeSeconds + compressionSeconds + network.time(of: collectives, workers: workers)
    }
}

/// One evaluation (one JSON line, `"type": "evaluation"`).
public struct EvaluationRecord: Sendable, Codable, Equatable {
    public var type = "evaluation"
    public var step: Int
    public var epoch: Int
    /// `accuracy` (fraction of test examples right) or `perplexity`.
    public var metric: String
    public var value: Double
    /// Wall seconds since the start of training, measured here (evaluation time excluded).
    public var elapsedSeconds: Double
    /// Σ projected step times so far on the run's network and projected worker count.
    public var projectedElapsedSeconds: Double
    public var cumulativePayloadBytes: Int
}

/// A finished run of one reducer.
public struct RunRecord: Sendable, Codable {
    public var reducer: String
    public var model: String
    public var dataset: String
    public var workers: Int
    public var network: String
    public var projectedWorkers: Int
    public var parameterCount: Int
    public var steps: [StepRecord]
    public var evaluations: [EvaluationRecord]

    public var finalMetric: EvaluationRecord? { evaluations.last }

    /// Median over steps (robust to the first, slower steps).
    func median(_ value: (StepRecord) -> Double) -> Double {
        let values = steps.map(value).sorted()
        return values.isEmpty ? 0 : values[values.count / 2]
    }

    public var payloadBytesPerStep: Double { median { Double($0.payloadBytes) } }
    public var compressionRatio: Double { median(\.compressionRatio) }
    public var measuredSecondsPerStep: Double { median(\.wallSeconds) }
    public func projectedSecondsPerStep(on network: NetworkModel, workers: Int) -> Double {
        median { $0.projectedSeconds(on: network, workers: workers) }
    }

    /// The first evaluation reaching `target` (≥ for accuracy, ≤ for perplexity), or nil.
    public func firstReaching(_ target: Double) -> EvaluationRecord? {
        evaluations.first { $0.metric == "perplexity" ? $0.value <= target : $0.value >= target }
    }
}
