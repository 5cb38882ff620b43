import Foundation

/// A handle that cancels one worker of an `InProcessGroup` from any thread (another worker, a
/// watchdog, or the `onCancel` of `withTaskCancellationHandler` around the task that runs the group).
///
/// **What cancelling rank r means.** Worker threads cannot be stopped from outside, so
/// cancellation acts at collectives, the only places where workers wait for one another:
/// - the group is marked failed, with rank r as the failed rank, at once;
/// - every *other* worker blocked in a collective wakes immediately (no polling, no timeout) and
///   throws `CollectiveError.peerFailed(rank: r, reason: "worker r was cancelled: <reason>")`;
///   one entering a collective later throws the same error at entry;
/// - worker r itself throws `CollectiveError.cancelled(rank: r, reason:)` from the collective it
///   is blocked in or enters next; its body can also poll `isCancelled(rank:)` to stop early;
/// - `InProcessGroup.run` then throws `WorkerError(rank: r, underlying: .cancelled(...))`, even if
///   worker r's body returned normally.
/// The first failure of a group wins: cancelling after a worker has thrown (or cancelling a second
/// rank) changes nothing. A cancellation requested before `run` starts fails the group at its
/// first collective. One handle serves one `run` at a time.
public final class GroupCancellation: @unchecked Sendable {
    private let lock = NSLock()
    private var state: GroupState?
    private var pending: (rank: Int, reason: String)?

    public init() {}

    /// Cancels worker `rank` (see the type's documentation). `rank` must be a rank of the group
    /// the handle is attached to (checked when the group runs).
    public func cancel(rank: Int, reason: String = "cancelled") {
        lock.lock()
        if pending == nil { pending = (rank, reason) }
        let attached = state
        lock.unlock()
        attached?.fail(rank: rank, error: CollectiveError.cancelled(rank: rank, reason: reason))
    }

    /// True once `rank` has been cancelled through this handle.
    public func isCancelled(rank: Int) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return pending?.rank == rank
    }

    /// Called by `InProcessGroup.run`: connects the group's state and applies an earlier request.
    func attach(_ group: GroupState) throws {
        lock.lock()
        let request = pending
        if let request, !(0 ..< group.size).contains(request.rank) {
            lock.unlock()
            throw CollectiveError.invalidArgument(
                "GroupCancellation: rank \(request.rank) was cancelled, but the group has ranks 0..<\(group.size)")
        }
        state = group
        lock.unlock()
        if let request { group.fail(rank: request.rank, error: CollectiveError.cancelled(rank: request.rank, reason: request.reason)) }
    }

    func detach() {
        lock.lock(); state = nil; lock.unlock()
    }
}
