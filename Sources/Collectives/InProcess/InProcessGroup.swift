import Dispatch
import Foundation

/// N workers as threads of one process, sharing memory: the embedded default backend.
///
/// `InProcessGroup.run(workers:)` starts one thread per worker, hands each its rank's
/// `Communicator`, waits for all and returns their results in rank order.
///
/// **Algorithms.** Every collective is a rendezvous: each rank publishes a descriptor of its
/// call (operation, element count, root, buffer address) and waits at a barrier; then ranks read
/// one another's buffers directly.
/// - all-reduce is a reduce-scatter fused with the all-gather over shared memory: the buffer is
///   cut into `size` chunks; rank r sums chunk r over ranks 0, 1, …, size−1 in that order and
///   writes the result into chunk r of *every* rank's buffer (`ReductionKernel`). No other rank
///   touches chunk r, so there is no scratch buffer and no barrier between the phases: one
///   rendezvous, one pass over memory (W reads + W writes of a chunk per rank), one closing
///   barrier. Every core works, each element is reduced once, in a fixed order: results are
///   bit-identical run to run and on every rank.
/// - all-gather and broadcast copy from the publishing ranks' memory after the first barrier; a
///   second barrier keeps every source alive until all copies are done.
///
/// **Failures.** If a worker's body throws, the group is marked failed and every worker blocked in
/// (or later entering) a collective throws `CollectiveError.peerFailed` naming that rank and its
/// error — immediately, not after a timeout. `run` rethrows the first original error.
/// Cancelling a worker (`GroupCancellation.cancel(rank:)`) fails the group the same way, naming
/// the cancelled rank.
///
/// **Mismatch.** After the first barrier each rank compares every descriptor with rank 0's; all
/// ranks see the same descriptors, so all throw the same `CollectiveError.mismatch` together.
///
/// Byte accounting (what a real network would carry, see `TrafficRecord`) is recorded as if the
/// ring and tree algorithms ran between machines, so the counters equal the formulas exactly.
public enum InProcessGroup {
    /// Runs `body` on `workers` threads, each with its own rank's communicator; returns the
    /// results in rank order, or throws the first worker error (the original, not a peer's
    /// `peerFailed` echo).
    ///
    /// `cancellation`, if given, lets any thread cancel one worker while the group runs (see
    /// `GroupCancellation`); `run` then throws `WorkerError` naming the cancelled rank.
    ///
    /// `collectiveTimeout` (seconds, nil: no limit; see `CollectiveTimeout`): a worker that has
    /// waited this long for the others to enter a collective fails the group; every waiting worker
    /// throws `CollectiveError.timeout` naming the workers that did not arrive, and `run` throws
    /// `WorkerError` naming the first of them. Threads cannot be stopped from outside, so `run`
    /// then returns without waiting for those workers: they keep running until their body returns,
    /// and their next collective throws the same error at entry.
    public static func run<T>(workers: Int, stackSize: Int = 64 << 20, cancellation: GroupCancellation? = nil,
                              collectiveTimeout: Double? = CollectiveTimeout.defaultSeconds,
                              _ body: @escaping (any Communicator) throws -> T) throws -> [T] {
        try run(workers: workers, stackSize: stackSize, cancellation: cancellation, collectiveTimeout: collectiveTimeout,
                observer: nil, body)
    }

    /// `run` with an `observer` called by every rank at each phase of every collective.
    static func run<T>(workers: Int, stackSize: Int = 64 << 20, cancellation: GroupCancellation? = nil,
                       collectiveTimeout: Double? = CollectiveTimeout.defaultSeconds,
                       observer: (@Sendable (Int, CollectivePhase) -> Void)?,
                       _ body: @escaping (any Communicator) throws -> T) throws -> [T] {
        guard workers >= 1 else {
            throw CollectiveError.invalidArgument("InProcessGroup.run needs at least one worker, got \(workers)")
        }
        try CollectiveTimeout.validate(collectiveTimeout)
        let state = GroupState(size: workers, timeout: collectiveTimeout, observer: observer)
        try cancellation?.attach(state)
        defer { cancellation?.detach() }
        let results = ResultSlots<T>(count: workers)
        let done = DispatchGroup()
        for rank in 0..<workers {
            done.enter()
            let thread = Thread {
                let communicator = InProcessCommunicator(rank: rank, state: state)
                do {
                    results.set(rank, .success(try body(communicator)))
                    state.depart(rank: rank)
                } catch {
                    results.set(rank, .failure(error))
                    state.fail(rank: rank, error: error)
                }
                done.leave()
            }
            thread.stackSize = stackSize
            thread.name = "worker-\(rank)"
            thread.start()
        }
        // Waits for every worker, except those a timeout found missing once all the others are done.
        while done.wait(timeout: .now() + 0.05) == .timedOut {
            if let missing = state.timedOut?.missing, results.finished(except: missing) { break }
        }
        if let timedOut = state.timedOut {
            throw WorkerError(rank: timedOut.missing[0], underlying: timedOut.error)
        }
        // A cancelled rank is the group's failure even if its own body returned normally.
        if let cancelled = state.cancellation {
            throw WorkerError(rank: cancelled.rank, underlying: CollectiveError.cancelled(rank: cancelled.rank, reason: cancelled.reason))
        }
        // The failure recorded first is the cause; rethrow it with its rank when that rank's own
        // error is at hand (it may instead have thrown a peer's echo).
        if let failed = state.failedRank, case let .failure(error)? = results.get(failed) {
            if case CollectiveError.peerFailed = error {} else { throw WorkerError(rank: failed, underlying: error) }
        }
        var values: [T] = []
        var firstPeerEcho: Error?
        for rank in 0..<workers {
            switch results.get(rank) {
            case let .success(value)?: values.append(value)
            case let .failure(error)?:
                if case CollectiveError.peerFailed = error { firstPeerEcho = firstPeerEcho ?? error; continue }
                throw WorkerError(rank: rank, underlying: error)
            case nil: fatalError("worker \(rank) finished without a result")
            }
        }
        if let firstPeerEcho { throw firstPeerEcho }
        return values
    }
}

/// A worker's own error, with the rank that threw it.
public struct WorkerError: Error, CustomStringConvertible {
    public var rank: Int
    public var underlying: Error
    public var description: String { "worker \(rank): \(underlying)" }
}

/// One slot per rank, written once by that rank's thread, read after all threads are joined.
final class ResultSlots<T>: @unchecked Sendable {
    private var slots: [Result<T, Error>?]
    private let lock = NSLock()
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ rank: Int, _ value: Result<T, Error>) { lock.lock(); slots[rank] = value; lock.unlock() }
    func get(_ rank: Int) -> Result<T, Error>? { lock.lock(); defer { lock.unlock() }; return slots[rank] }
    /// Whether every rank not in `ranks` has its result.
    func finished(except ranks: [Int]) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return slots.indices.allSatisfy { ranks.contains($0) || slots[$0] != nil }
    }
}
