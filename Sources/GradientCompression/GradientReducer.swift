import Collectives
import LinearAlgebra

/// Turns this worker's local gradients into the group's (approximate) average.
///
/// A reducer drives the communicator itself because some methods need several
/// rounds (PowerSGD all-reduces P, then computes Q from the reduced P, then
/// all-reduces Q). After `reduce` returns, `gradients` hold the same values on
/// every worker. Momentum, weight decay and the learning rate are the
/// optimizer's and are applied after the reducer (the paper's Algorithm 2) — except for
/// reducers whose output already carries momentum (`appliesMomentum`).
public protocol GradientReducer {
    /// A short name for tables and logs, e.g. `powersgd(rank=2)`.
    var name: String { get }

    /// Whether the output already carries momentum: DGC's momentum correction accumulates it
    /// per worker before selection (ALGORITHMS.md §5.5) and Signum votes with the signs of each
    /// worker's momentum (§5.2). The optimizer must then run without momentum of its own, or
    /// the step would apply momentum twice. False unless a reducer says otherwise.
    var appliesMomentum: Bool { get }

    /// Tells the reducer how many optimizer steps an epoch has, for schedules counted in
    /// epochs (DGC's sparsity warm-up). The training loop calls it before its first step;
    /// reducers without such a schedule ignore it.
    mutating func prepare(stepsPerEpoch: Int)

    /// Replaces the local gradients with the (approximate) average over the group,
    /// identical on every worker, and updates internal state (error feedback,
    /// warm-start factors, generator counters).
    ///
    /// - Throws: `GradientCompressionError` when the gradient list disagrees
    ///   with the one the state was built for, or a `CollectiveError` from the group.
    mutating func reduce(_ gradients: inout [Tensor], over group: any Communicator) throws -> ReductionStats

    /// Whether `reduce(_:tensors:of:over:)` is exact for this reducer (BucketedReduction.swift).
    var bucketSupport: BucketSupport { get }

    /// Reduces `bucket`, the tensors `tensors` of the model's gradient list whose shapes are
    /// `shapes`, with the state of those tensor indices. One step's buckets cover every index
    /// once; `finishStep()` ends the step (BucketedReduction.swift).
    mutating func reduce(_ bucket: inout [Tensor], tensors: Range<Int>, of shapes: [[Int]],
                         over group: any Communicator) throws -> ReductionStats

    /// Ends a step reduced in buckets: advances the step counter.
    mutating func finishStep()

    /// The reducer's whole mutable state (error feedback, warm-start factors,
    /// step counters, plans) in the checkpoint format.
    func saveState(to archive: inout StateWriter)

    /// Restores state written by `saveState`; throws on a truncated or foreign archive.
    mutating func restoreState(from archive: inout StateReader) throws
}

extension GradientReducer {
    public var appliesMomentum: Bool { false }
    public mutating func prepare(stepsPerEpoch: Int) {}
}

/// What one call to `GradientReducer.reduce` cost and achieved, on this worker.
public struct ReductionStats: Sendable, Codable, Equatable {
    /// Bytes this worker contributed to collectives (the payload, before the algorithm's fan-out).
    public var payloadBytes: Int
    /// Bytes the collective algorithms sent and received for this worker (see `TrafficRecord`).
    public var bytesSent: Int
    public var bytesReceived: Int
    /// 4 × the number of gradient elements: what plain fp32 all-reduce would contribute.
    public var uncompressedBytes: Int
    /// Seconds spent outside collectives (compression, decompression, error feedback).
    public var computeSeconds: Double
    /// Seconds spent inside collectives.
    public var communicationSeconds: Double
    /// ‖Δ − Δ'‖ / ‖Δ‖ of the local error-corrected input against what was applied, where cheap; else nil.
    public var relativeError: Double?
    /// The collectives of this call, for the network model's projection.
    public var collectives: [TrafficRecord]

    /// uncompressed / payload; `.infinity` when nothing was sent.
    public var compressionRatio: Double {
        payloadBytes == 0 ? .infinity : Double(uncompressedBytes) / Double(payloadBytes)
    }

    public init(payloadBytes: Int = 0, bytesSent: Int = 0, bytesReceived: Int = 0,
                uncompressedBytes: Int = 0, computeSeconds: Double = 0,
                communicationSeconds: Double = 0, relativeError: Double? = nil,
                collectives: [TrafficRecord] = []) {
        self.payloadBytes = payloadBytes
        self.bytesSent = bytesSent
        self.bytesReceived = bytesReceived
        self.uncompressedBytes = uncompressedBytes
        self.computeSeconds = computeSeconds
        self.communicationSeconds = communicationSeconds
        self.relativeError = relativeError
        self.collectives = collectives
    }
}
