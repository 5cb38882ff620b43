import Collectives

/// One optimizer step of a run, as the log stores it (one JSON line, `"record": "step"`).
///
/// Byte counts are this worker's (rank 0's; every method here sends the same payload on every
/// rank, variable-length all-gathers aside); times are the slowest worker's, as the trainer
/// agrees on them. Field meanings and units: `docs/reports.md`.
public struct StepRecord: Sendable, Codable, Equatable {
    /// 0-based optimizer step.
    public var step: Int
    public var epoch: Int
    /// Training loss of the step, averaged over workers.
    public var loss: Double
    public var learningRate: Double?
    /// Bytes this worker contributed to the step's collectives (before the algorithm's fan-out).
    public var payloadBytes: Int
    /// Bytes the collective algorithms sent / received for this worker at the run's worker count.
    public var bytesSent: Int
    public var bytesReceived: Int
    /// 4 × gradient elements: what plain fp32 all-reduce would contribute.
    public var uncompressedBytes: Int
    /// Σ `payloadBytes` / Σ `bytesSent` over the run's steps up to and including this one.
    public var cumulativePayloadBytes: Int
    public var cumulativeBytesSent: Int
    /// `uncompressedBytes / payloadBytes`; nil when nothing was sent (JSON has no infinity).
    public var compressionRatio: Double?
    /// Forward + backward, slowest worker.
    public var computeSeconds: Double
    /// Reducer time outside collectives (compression, decompression, error feedback), slowest worker.
    public var compressionSeconds: Double
    /// Reducer time inside collectives, as measured here, slowest worker.
    public var communicationSeconds: Double
    /// Optimizer update, slowest worker.
    public var optimizerSeconds: Double
    /// How long the fastest worker waited for the slowest to reach the step's first collective
    /// (wall time; nil in logs written before it was recorded).
    public var skewSeconds: Double?
    /// The step time the network model projects for the run's `ProjectionTarget`
    /// (`localSeconds` + projected collectives; see `ProjectionTarget.stepSeconds`).
    public var projectedSeconds: Double
    /// The reducer's collectives of this step, in call order, for re-projection on any network.
    public var collectives: [TrafficRecord]
    /// Under DP-SGD (`--dp`): the ε spent by the released model after this step (at the run's δ);
    /// nil without DP, and when ε is infinite (`noise=0`: clipping only), which JSON cannot hold.
    public var epsilon: Double?
    /// With `--overlap` (nil without), slowest worker each: the step's wall time, the time the
    /// communication thread spent reducing the buckets, and the exposed communication — how long
    /// the main thread waited for it after backward (docs/overlap.md).
    public var wallSeconds: Double?
    public var communicationThreadSeconds: Double?
    public var exposedCommunicationSeconds: Double?

    public init(step: Int, epoch: Int, loss: Double, learningRate: Double? = nil,
                payloadBytes: Int, bytesSent: Int, bytesReceived: Int, uncompressedBytes: Int,
                cumulativePayloadBytes: Int, cumulativeBytesSent: Int,
                computeSeconds: Double, compressionSeconds: Double, communicationSeconds: Double,
                optimizerSeconds: Double, projectedSeconds: Double, collectives: [TrafficRecord]) {
        self.step = step
        self.epoch = epoch
        self.loss = loss
        self.learningRate = learningRate
        self.payloadBytes = payloadBytes
        self.bytesSent = bytesSent
        self.bytesReceived = bytesReceived
        self.uncompressedBytes = uncompressedBytes
        self.cumulativePayloadBytes = cumulativePayloadBytes
        self.cumulativeBytesSent = cumulativeBytesSent
        self.compressionRatio = payloadBytes > 0 ? Double(uncompressedBytes) / Double(payloadBytes) : nil
        self.computeSeconds = computeSeconds
        self.compressionSeconds = compressionSeconds
        self.communicationSeconds = communicationSeconds
        self.optimizerSeconds = optimizerSeconds
        self.projectedSeconds = projectedSeconds
        self.collectives = collectives
    }

    /// Work that stays on the worker on any network: compute + compression + optimizer.
    public var localSeconds: Double { computeSeconds + compressionSeconds + optimizerSeconds }

    /// The step's measured time: with `--overlap` its wall time, else `localSeconds` + measured
    /// communication (nothing overlaps).
    public var measuredSeconds: Double { wallSeconds ?? localSeconds + communicationSeconds }
}
