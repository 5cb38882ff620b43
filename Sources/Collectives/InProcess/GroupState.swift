import Foundation

/// What a rank tells the others about the collective it is entering.
struct CallDescriptor: Equatable {
    var operation: String
    var count: Int
    var root: Int
    /// The rank's buffer or message (valid until the collective's last barrier).
    var address: UnsafeMutableRawPointer?

    var summary: String {
        switch operation {
        case "barrier": return "barrier"
        case "allGather": return "allGather"
        case "broadcastBytes": return "broadcast(bytes, root \(root))"
        default: return root >= 0 ? "\(operation)(\(count) elements, root \(root))" : "\(operation)(\(count) elements)"
        }
    }

    /// Calls agree when everything but the address and (for all-gather) the length agrees.
    func agrees(with other: CallDescriptor) -> Bool {
        operation == other.operation && root == other.root && (["allGather", "broadcastBytes"].contains(operation) || count == other.count)
    }
}

/// The two points of a collective between which ranks use one another's memory.
enum CollectivePhase: Sendable {
    /// The opening meeting is over: every rank has published its call and may now read or write
    /// the others' buffers.
    case opened
    /// This rank is done with the other ranks' buffers and enters the closing meeting.
    case closing
}

/// The shared state of an in-process group: published descriptors, a reusable barrier, and
/// the failure flag that turns every wait into a thrown error.
final class GroupState: @unchecked Sendable {
    let size: Int
    /// Called by each rank at each `CollectivePhase` (tests use it to force interleavings).
    private let observer: (@Sendable (_ rank: Int, _ phase: CollectivePhase) -> Void)?
    private let condition = NSCondition()
    private var arrived = 0
    private var generation = 0
    /// The group's first failure; `timeout` is set when ranks did not arrive in time (every rank
    /// then throws that same error).
    private var failure: (rank: Int, reason: String, cancelled: Bool, timeout: CollectiveError?)?
    /// The meeting generation during which `failure` was recorded.
    private var failureGeneration = 0
    /// Seconds an opening meeting waits for the last rank (nil: no limit).
    let timeout: Double?
    /// Which ranks are in the current meeting (for the timeout's message).
    private var present: [Bool]
    /// Ranks whose body returned; a barrier they will never enter fails instead of hanging.
    private var departed: Int?
    private var descriptors: [CallDescriptor?]

    init(size: Int, timeout: Double? = nil, observer: (@Sendable (Int, CollectivePhase) -> Void)? = nil) {
        self.size = size
        self.timeout = timeout
        self.observer = observer
        present = Array(repeating: false, count: size)
        descriptors = Array(repeating: nil, count: size)
    }

    /// The rank whose failure was recorded first (the cause; later failures are its echoes).
    var failedRank: Int? {
        condition.lock(); defer { condition.unlock() }
        return failure?.rank
    }

    /// The cancellation recorded as the group's failure, if that is what ended it.
    var cancellation: (rank: Int, reason: String)? {
        condition.lock(); defer { condition.unlock() }
        guard let failure, failure.cancelled else { return nil }
        return (failure.rank, failure.reason)
    }

    /// The timeout recorded as the group's failure, with the ranks that did not arrive.
    var timedOut: (missing: [Int], error: CollectiveError)? {
        condition.lock(); defer { condition.unlock() }
        guard let error = failure?.timeout, case let .timeout(missing, _, _, _, _, _) = error else { return nil }
        return (missing, error)
    }

    func fail(rank: Int, error: Error) {
        condition.lock()
        if failure == nil {
            if case let CollectiveError.peerFailed(original, reason) = error {
                failure = (original, reason, false, nil)
            } else if case let CollectiveError.cancelled(cancelledRank, reason) = error {
                failure = (cancelledRank, reason, true, nil)
            } else {
                failure = (rank, "\(error)", false, nil)
            }
            failureGeneration = generation
        }
        condition.broadcast()
        condition.unlock()
    }

    func depart(rank: Int) {
        condition.lock()
        departed = departed ?? rank
        condition.broadcast()
        condition.unlock()
    }

    /// The error a waiting `rank` throws once the group has failed: the cancelled rank itself gets
    /// `cancelled`, every other rank `peerFailed` naming the failed rank and its error.
    private func failureError(for rank: Int) -> CollectiveError? {
        guard let failure else { return nil }
        if let timeout = failure.timeout { return timeout }
        if failure.cancelled {
            return rank == failure.rank
                ? .cancelled(rank: rank, reason: failure.reason)
                : .peerFailed(rank: failure.rank, reason: CollectiveError.cancelled(rank: failure.rank, reason: failure.reason).description)
        }
        return .peerFailed(rank: failure.rank, reason: failure.reason)
    }

    /// Where a rank waits: its collective, as the timeout's message names it.
    struct Waiting {
        var call: String
        /// The rank's collectives so far, this one included (collective #sequence).
        var sequence: Int
        /// The rank's traffic-ledger step (0: before the first step).
        var step: Int
    }

    /// Waits until every rank has arrived; an opening meeting (`closing` false) throws at once if
    /// the group has failed, and fails the group with `CollectiveError.timeout` (naming the ranks
    /// that did not arrive and `waiting`'s collective) once it has waited `timeout` seconds.
    ///
    /// A closing meeting ends a collective whose opening meeting every rank passed: until all ranks
    /// arrive, some may still be reading or writing this rank's buffer. It therefore waits for all
    /// of them even if the group has failed (they are all between the two meetings, in bounded
    /// memory copies, so the wait ends), and throws the failure only then — if it was recorded
    /// before the meeting ended (a rank that already left may fail with this collective's own
    /// error, e.g. a mismatch, which the others then throw themselves).
    func barrier(rank: Int, closing: Bool = false, waiting: Waiting? = nil) throws {
        condition.lock()
        defer { condition.unlock() }
        if !closing, let error = failureError(for: rank) { throw error }
        let myGeneration = generation
        arrived += 1
        present[rank] = true
        if arrived == size {
            arrived = 0
            generation &+= 1
            for r in 0 ..< size { present[r] = false }
            condition.broadcast()
        }
        // Closing meetings never time out: every rank is already inside the collective.
        let deadline = closing ? nil : timeout.map { Date(timeIntervalSinceNow: $0) }
        while generation == myGeneration {
            if !closing {
                if let error = failureError(for: rank) { throw error }
                if let departed {
                    arrived -= 1
                    throw CollectiveError.peerFailed(rank: departed, reason: "it finished without entering this collective")
                }
            }
            guard let deadline, let seconds = timeout else { condition.wait(); continue }
            if condition.wait(until: deadline) || generation != myGeneration || failure != nil { continue }
            let missing = (0 ..< size).filter { !present[$0] }
            let error = CollectiveError.timeout(
                missing: missing, waiting: (0 ..< size).filter { present[$0] },
                call: waiting?.call ?? "collective", sequence: waiting?.sequence ?? 0, step: waiting?.step ?? 0,
                seconds: seconds)
            failure = (missing.first ?? rank, "\(error)", false, error)
            failureGeneration = generation
            condition.broadcast()
            throw error
        }
        if closing, failure != nil, failureGeneration <= myGeneration, let error = failureError(for: rank) { throw error }
    }

    /// Publishes this rank's call, waits for all, and checks that every rank made the same call.
    func rendezvous(rank: Int, sequence: Int, step: Int, _ call: CallDescriptor) throws -> [CallDescriptor] {
        condition.lock()
        descriptors[rank] = call
        condition.unlock()
        try barrier(rank: rank, waiting: Waiting(call: call.summary, sequence: sequence, step: step))
        condition.lock()
        let all = descriptors.map { $0! }
        condition.unlock()
        for other in 0..<size where !all[other].agrees(with: all[0]) {
            let error = CollectiveError.mismatch(rank: other, call: all[other].summary,
                                                 otherRank: 0, otherCall: all[0].summary)
            // Every rank read the same descriptors and takes this branch; meeting once more keeps
            // a fast rank from publishing its next call before a slow one has read this round's.
            try barrier(rank: rank, closing: true)
            throw error
        }
        observer?(rank, .opened)
        return all
    }

    /// The closing meeting of a collective: this rank is done with the other ranks' memory.
    func close(rank: Int) throws {
        observer?(rank, .closing)
        try barrier(rank: rank, closing: true)
    }
}
