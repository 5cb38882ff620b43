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
    private var failure: (rank: Int, reason: String, cancelled: Bool)?
    /// Ranks whose body returned; a barrier they will never enter fails instead of hanging.
    private var departed: Int?
    private var descriptors: [CallDescriptor?]

    init(size: Int, observer: (@Sendable (Int, CollectivePhase) -> Void)? = nil) {
        self.size = size
        self.observer = observer
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

    func fail(rank: Int, error: Error) {
        condition.lock()
        if failure == nil {
            if case let CollectiveError.peerFailed(original, reason) = error {
                failure = (original, reason, false)
            } else if case let CollectiveError.cancelled(cancelledRank, reason) = error {
                failure = (cancelledRank, reason, true)
            } else {
                failure = (rank, "\(error)", false)
            }
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
        if failure.cancelled {
            return rank == failure.rank
                ? .cancelled(rank: rank, reason: failure.reason)
                : .peerFailed(rank: failure.rank, reason: CollectiveError.cancelled(rank: failure.rank, reason: failure.reason).description)
        }
        return .peerFailed(rank: failure.rank, reason: failure.reason)
    }

    /// Waits until every rank has arrived; an opening meeting (`closing` false) throws at once if
    /// the group has failed.
    ///
    /// A closing meeting ends a collective whose opening meeting every rank passed: until all ranks
    /// arrive, some may still be reading or writing this rank's buffer. It therefore waits for all
    /// of them even if the group has failed (they are all between the two meetings, in bounded
    /// memory copies, so the wait ends), and throws the failure only then.
    func barrier(rank: Int, closing: Bool = false) throws {
        condition.lock()
        defer { condition.unlock() }
        if !closing, let error = failureError(for: rank) { throw error }
        let myGeneration = generation
        arrived += 1
        if arrived == size {
            arrived = 0
            generation &+= 1
            condition.broadcast()
        }
        while generation == myGeneration {
            if !closing {
                if let error = failureError(for: rank) { throw error }
                if let departed {
                    arrived -= 1
                    throw CollectiveError.peerFailed(rank: departed, reason: "it finished without entering this collective")
                }
            }
            condition.wait()
        }
        if closing, let error = failureError(for: rank) { throw error }
    }

    /// Publishes this rank's call, waits for all, and checks that every rank made the same call.
    func rendezvous(rank: Int, _ call: CallDescriptor) throws -> [CallDescriptor] {
        condition.lock()
        descriptors[rank] = call
        condition.unlock()
        try barrier(rank: rank)
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
