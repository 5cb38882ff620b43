import Collectives
import Dispatch

/// Measures one `reduce` call: its wall time and the collectives it issued,
/// read from the communicator's ledger, so every reducer reports bytes that
/// actually crossed the communicator rather than a formula.
///
/// Usage: `let meter = ReductionMeter(group)` at the start of `reduce`, and
/// `return meter.finish(uncompressedBytes: …, relativeError: …)` at the end.
public struct ReductionMeter {
    private let ledger: TrafficLedger
    private let mark: TrafficMark
    private let start: UInt64

    public init(_ group: any Communicator) {
        ledger = group.traffic
        mark = group.traffic.mark()
        start = DispatchTime.now().uptimeNanoseconds
    }

    /// The statistics of the call so far. Compute time is wall time minus time inside collectives.
    public func finish(uncompressedBytes: Int, relativeError: Double? = nil) -> ReductionStats {
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        let records = Array(ledger.records(since: mark))
        var totals = TrafficTotals()
        for record in records { totals.add(record) }
        return ReductionStats(payloadBytes: totals.payloadBytes, bytesSent: totals.bytesSent,
                              bytesReceived: totals.bytesReceived, uncompressedBytes: uncompressedBytes,
                              computeSeconds: max(0, elapsed - totals.seconds),
                              communicationSeconds: totals.seconds, relativeError: relativeError,
                              collectives: records)
    }
}
