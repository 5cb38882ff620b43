/// The kinds of collective a `Communicator` performs, as the network model prices them.
public enum CollectiveKind: String, Sendable, Codable, CaseIterable {
    case allReduce, allGather, broadcast, barrier
}

/// One collective as this rank saw it.
///
/// `payloadBytes` is what this rank contributed (its buffer or message);
/// `bytesSent` / `bytesReceived` are what the algorithm moves for this rank:
/// - ring all-reduce of P bytes over W ranks: sent = received = 2(W−1)/W · P
///   (reduce-scatter then all-gather, each moving (W−1) chunks of P/W);
/// - ring all-gather: sent = (W−1) · own message, received = Σ of the other ranks' messages;
/// - broadcast along a binomial tree: the root sends P to each child, every other rank receives P once
///   and sends P to each of its children.
/// The integer division in 2(W−1)/W · P is done on the exact chunk sizes
/// (`TrafficLedger.ringAllReduceBytes`), so counters are whole bytes.
public struct TrafficRecord: Sendable, Codable, Equatable {
    public var kind: CollectiveKind
    public var payloadBytes: Int
    public var bytesSent: Int
    public var bytesReceived: Int
    public var seconds: Double
    public var workers: Int

    public init(kind: CollectiveKind, payloadBytes: Int, bytesSent: Int, bytesReceived: Int,
                seconds: Double, workers: Int) {
        self.kind = kind
        self.payloadBytes = payloadBytes
        self.bytesSent = bytesSent
        self.bytesReceived = bytesReceived
        self.seconds = seconds
        self.workers = workers
    }
}

/// Totals over a sequence of `TrafficRecord`s.
public struct TrafficTotals: Sendable, Codable, Equatable {
    public var collectives = 0
    public var payloadBytes = 0
    public var bytesSent = 0
    public var bytesReceived = 0
    public var seconds = 0.0

    public init() {}

    public mutating func add(_ record: TrafficRecord) {
        collectives += 1
        payloadBytes += record.payloadBytes
        bytesSent += record.bytesSent
        bytesReceived += record.bytesReceived
        seconds += record.seconds
    }
}

/// A position in a `TrafficLedger`: `records(since:)` returns the collectives recorded after it.
///
/// A span that measures its own collectives (a reducer's `reduce` call, through
/// `ReductionMeter`) takes a mark when it starts instead of relying on where the current step
/// began, so it counts exactly its own collectives however the caller divides its steps.
public struct TrafficMark: Sendable, Equatable {
    /// Collectives recorded in the ledger before the mark, since the ledger was made.
    public let recordsBefore: Int
}

/// What one rank has put on the wire and received: every collective of the current step (since
/// the last `beginStep()`), and cumulative totals since the ledger was made.
///
/// A communicator owns one ledger per rank and appends to it; reducers and the trainer read it.
/// The step boundary numbers the steps (a collective timeout names the step it happened in) and
/// bounds the memory: the records of earlier steps are dropped, their totals kept in `cumulative`.
/// Not thread-safe across ranks by design: each rank's ledger is touched only by that rank's thread.
public final class TrafficLedger: @unchecked Sendable {
    /// The collectives of the current step, in call order.
    public private(set) var stepRecords: [TrafficRecord] = []
    /// Totals of the current step.
    public private(set) var step = TrafficTotals()
    /// Totals since the ledger was created.
    public private(set) var cumulative = TrafficTotals()
    /// `beginStep()` calls so far: the step the current collectives belong to, counted from 1 since
    /// the ledger was made (0 before the first step). A collective timeout names it.
    public private(set) var stepNumber = 0
    /// Records of earlier steps, dropped by `beginStep()`.
    private var droppedRecords = 0

    public init() {}

    /// Starts a new step: clears `stepRecords` and `step`, keeps `cumulative`.
    public func beginStep() {
        stepNumber += 1
        droppedRecords += stepRecords.count
        stepRecords.removeAll(keepingCapacity: true)
        step = TrafficTotals()
    }

    public func record(_ record: TrafficRecord) {
        stepRecords.append(record)
        step.add(record)
        cumulative.add(record)
    }

    /// The current position: collectives recorded from now on are `records(since:)` it.
    public func mark() -> TrafficMark { TrafficMark(recordsBefore: droppedRecords + stepRecords.count) }

    /// The collectives recorded after `mark`, in call order. A mark taken before the current step
    /// began reads from the step's start: the records before it are no longer kept.
    public func records(since mark: TrafficMark) -> ArraySlice<TrafficRecord> {
        stepRecords[min(max(0, mark.recordsBefore - droppedRecords), stepRecords.count)...]
    }

    /// Bytes one rank sends (and receives) in a ring all-reduce of `payloadBytes` over `workers`:
    /// the buffer is cut into `workers` chunks (the first `payloadBytes % workers` one byte longer);
    /// in reduce-scatter and all-gather each rank sends every chunk but one, so the total is
    /// 2·(payload − smallest owned chunk) summed exactly, = 2(W−1)/W · P when W divides P.
    public static func ringAllReduceBytes(payloadBytes: Int, workers: Int) -> Int {
        guard workers > 1 else { return 0 }
        return 2 * (payloadBytes - payloadBytes / workers)
    }
}
