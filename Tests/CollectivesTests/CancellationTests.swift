import Dispatch
import Foundation
import Testing
@testable import Collectives

/// Cancelling one worker of an in-process group (`GroupCancellation`): the other workers fail fast
/// with an error naming the cancelled rank, the cancelled worker gets `.cancelled`, and `run`
/// throws `WorkerError` naming it; nothing hangs.
@Suite struct CancellationTests {
    static func seconds(since start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 }

    /// Rank 1 is stuck in a long computation (it only polls its own cancellation flag); the others
    /// are blocked in an all-reduce. A watchdog thread cancels rank 1 after 0.2 s: the blocked
    /// ranks must wake well within 1 s, with `peerFailed` naming rank 1 and the reason.
    @Test(arguments: [2, 3, 4])
    func blockedPeersOfACancelledWorkerFailFastNamingIt(workers: Int) throws {
        let cancellation = GroupCancellation()
        let start = DispatchTime.now().uptimeNanoseconds
        let cancelledAt = Outcomes()
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) {
            cancelledAt.add(rank: 1, error: CollectiveError.cancelled(rank: 1, reason: ""), at: Self.seconds(since: start))
            cancellation.cancel(rank: 1, reason: "stopped by the watchdog")
        }
        let outcomes = Outcomes()
        let error = #expect(throws: WorkerError.self) {
            _ = try InProcessGroup.run(workers: workers, cancellation: cancellation) { group -> Int in
                if group.rank == 1 {
                    // Stuck: gives up polling after 5 s so a broken implementation fails, not hangs.
                    while !cancellation.isCancelled(rank: 1) && Self.seconds(since: start) < 5 {
                        Thread.sleep(forTimeInterval: 0.001)
                    }
                }
                var v = [Float](repeating: 1, count: 1000)
                do { try group.allReduce(&v, operation: .sum) } catch {
                    outcomes.add(rank: group.rank, error: error, at: Self.seconds(since: start))
                    throw error
                }
                return 0
            }
        }
        #expect(error?.rank == 1)
        #expect(error?.underlying as? CollectiveError == .cancelled(rank: 1, reason: "stopped by the watchdog"))
        let seen = outcomes.all
        #expect(seen.count == workers)
        for (rank, error, time) in seen {
            if rank == 1 {
                #expect(error as? CollectiveError == .cancelled(rank: 1, reason: "stopped by the watchdog"))
            } else {
                #expect(error as? CollectiveError == .peerFailed(rank: 1, reason: "worker 1 was cancelled: stopped by the watchdog"))
                #expect("\(error)" == "worker 1 failed: worker 1 was cancelled: stopped by the watchdog")
            }
            // The wake-up is a condition broadcast: well under 1 s after the cancellation.
            let cancelTime = cancelledAt.all.first?.time ?? .infinity
            #expect(time >= cancelTime && time < cancelTime + 0.5, "rank \(rank) woke at \(time) s, cancelled at \(cancelTime) s")
        }
    }

    /// The cancelled worker is the one blocked in a collective (waiting for a slow peer): it throws
    /// `.cancelled` at once, and the slow peer's later collective fails at entry naming it.
    @Test func aCancelledWorkerBlockedInACollectiveWakesAndLaterCallersFail() throws {
        let cancellation = GroupCancellation()
        let start = DispatchTime.now().uptimeNanoseconds
        let cancelledAt = Outcomes()
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.1) {
            cancelledAt.add(rank: 0, error: CollectiveError.cancelled(rank: 0, reason: ""), at: Self.seconds(since: start))
            cancellation.cancel(rank: 0)
        }
        let outcomes = Outcomes()
        let error = #expect(throws: WorkerError.self) {
            _ = try InProcessGroup.run(workers: 2, cancellation: cancellation) { group -> Int in
                // The slow peer enters only after rank 0 (blocked in the barrier) was cancelled.
                if group.rank == 1 {
                    while !cancellation.isCancelled(rank: 0) && Self.seconds(since: start) < 5 {
                        Thread.sleep(forTimeInterval: 0.001)
                    }
                    Thread.sleep(forTimeInterval: 0.05)
                }
                do { try group.barrier() } catch {
                    outcomes.add(rank: group.rank, error: error, at: Self.seconds(since: start))
                    throw error
                }
                return 0
            }
        }
        #expect(error?.rank == 0)
        let seen = Dictionary(uniqueKeysWithValues: outcomes.all.map { ($0.rank, ($0.error, $0.time)) })
        let cancelTime = cancelledAt.all.first?.time ?? .infinity
        #expect(seen[0]?.0 as? CollectiveError == .cancelled(rank: 0, reason: "cancelled"))
        #expect(seen[0].map { $0.1 >= cancelTime && $0.1 < cancelTime + 0.5 } == true)
        #expect(seen[1]?.0 as? CollectiveError == .peerFailed(rank: 0, reason: "worker 0 was cancelled: cancelled"))
    }

    /// A worker whose body returns normally but was cancelled still makes `run` throw; a
    /// cancellation requested before `run` fails the group at its first collective.
    @Test func cancellationBeforeRunAndOfAFinishedWorker() throws {
        let early = GroupCancellation()
        early.cancel(rank: 2, reason: "before start")
        let error = #expect(throws: WorkerError.self) {
            _ = try InProcessGroup.run(workers: 3, cancellation: early) { group -> Int in
                try group.barrier()
                return group.rank
            }
        }
        #expect(error?.rank == 2)
        #expect("\(error!)" == "worker 2: worker 2 was cancelled: before start")

        let late = GroupCancellation()
        #expect(throws: WorkerError.self) {
            _ = try InProcessGroup.run(workers: 2, cancellation: late) { group -> Int in
                if group.rank == 0 { late.cancel(rank: 0) }
                return group.rank
            }
        }
    }

    @Test func cancellingARankOutsideTheGroupIsAnError() {
        let cancellation = GroupCancellation()
        cancellation.cancel(rank: 5)
        #expect(throws: CollectiveError.invalidArgument(
            "GroupCancellation: rank 5 was cancelled, but the group has ranks 0..<2")) {
            _ = try InProcessGroup.run(workers: 2, cancellation: cancellation) { $0.rank }
        }
    }

    /// A group without cancellation still returns normally after a handle was used elsewhere.
    @Test func uncancelledGroupsAreUnaffected() throws {
        let cancellation = GroupCancellation()
        let ranks = try InProcessGroup.run(workers: 3, cancellation: cancellation) { group -> Int in
            try group.barrier()
            return group.rank
        }
        #expect(ranks == [0, 1, 2])
    }
}

/// Errors seen by the workers, with the time each was thrown.
final class Outcomes: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [(rank: Int, error: Error, time: Double)] = []
    func add(rank: Int, error: Error, at time: Double) { lock.lock(); values.append((rank, error, time)); lock.unlock() }
    var all: [(rank: Int, error: Error, time: Double)] { lock.lock(); defer { lock.unlock() }; return values }
}
