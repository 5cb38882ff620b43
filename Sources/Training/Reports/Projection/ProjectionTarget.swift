import Collectives

/// A network and a worker count to project step times onto, e.g. "16 workers on 10gbit".
///
/// Projected step time = `StepRecord.localSeconds` (compute + compression + optimizer, as measured)
/// + the network model's time of the step's collectives re-run on `workers` ranks. We assume
/// **no overlap** of computation and communication (the reducer runs after the backward pass,
/// as in the paper's Algorithm 2), so the two add. Compute per worker is kept as measured: the
/// batch per worker stays fixed as workers are added (weak scaling).
public struct ProjectionTarget: Sendable, Codable, Equatable {
    /// The network as the user named it (`10gbit`, `2.5gbit,20us`).
    public var network: String
    /// α, seconds per message.
    public var latency: Double
    /// β, bytes per second per link.
    public var bandwidth: Double
    /// Workers to project onto.
    public var workers: Int

    public init(network name: String, model: NetworkModel, workers: Int) {
        self.network = name
        self.latency = model.latency
        self.bandwidth = model.bandwidth
        self.workers = workers
    }

    /// Parses the network with `NetworkModel(parsing:)`; throws its error, or one naming the worker count.
    public init(network name: String, workers: Int) throws {
        guard workers >= 1 else { throw ReportError.invalidWorkers(workers) }
        self.init(network: name, model: try NetworkModel(parsing: name), workers: workers)
    }

    public var model: NetworkModel { NetworkModel(latency: latency, bandwidth: bandwidth) }

    /// Projected seconds of a step's collectives on `workers` ranks of this network.
    public func communicationSeconds(_ collectives: [TrafficRecord]) -> Double {
        model.time(of: collectives, workers: workers)
    }

    /// Projected seconds of one step: local work plus projected communication, no overlap.
    public func stepSeconds(_ step: StepRecord) -> Double {
        step.localSeconds + communicationSeconds(step.collectives)
    }

    /// `10gbit, W=16`, for table headers and chart labels.
    public var label: String { "\(network), W=\(workers)" }
}
