import Dispatch
import Foundation
import Testing
@testable import Collectives

/// `InProcessGroup.run(collectiveTimeout:)`: a worker that never enters a collective makes the
/// others fail after the timeout with an error naming it and the collective they waited in;
/// `run` returns without waiting for the missing worker.
@Suite struct CollectiveTimeoutTests {
    static func seconds(since start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 }

    /// Rank 2 stops arriving after the first collective (it waits for a release that comes only
    /// after `run` has returned, at most 20 s). With a 0.5 s timeout, ranks 0 and 1 must throw
    /// the timeout naming rank 2, collective #2 and step 1 well before that, and `run` must return.
    @Test func aWorkerThatNeverArrivesFailsTheOthersAfterTheTimeoutNamingIt() throws {
        let release = EventLog()
        defer { release.log("released") }
        let errors = Outcomes()
        let start = DispatchTime.now().uptimeNanoseconds
        let error = #expect(throws: WorkerError.self) {
            _ = try InProcessGroup.run(workers: 3, collectiveTimeout: 0.5) { group -> Int in
                var v = [Float](repeating: 1, count: 10)
                try group.allReduce(&v, operation: .sum)
                group.traffic.beginStep()
                if group.rank == 2 { release.wait(for: "released", seconds: 20) }
                do { try group.allReduce(&v, operation: .sum) } catch {
                    errors.add(rank: group.rank, error: error, at: Self.seconds(since: start))
                    throw error
                }
                return 0
            }
        }
        let elapsed = Self.seconds(since: start)
        let expected = CollectiveError.timeout(missing: [2], waiting: [0, 1], call: "allReduce.sum(10 elements)",
                                               sequence: 2, step: 1, seconds: 0.5)
        #expect("\(expected)" == "collective timeout: rank 2 did not enter collective #2 allReduce.sum(10 elements) (step 1) "
                + "within 0.5 s, while ranks 0, 1 waited in it")
        #expect(error?.rank == 2)
        #expect(error?.underlying as? CollectiveError == expected)
        let waiters = errors.all.filter { $0.rank != 2 }
        #expect(waiters.map(\.rank).sorted() == [0, 1])
        for waiter in waiters {
            #expect(waiter.error as? CollectiveError == expected)
            #expect(waiter.time >= 0.5 && waiter.time < 3, "rank \(waiter.rank) gave up after \(waiter.time) s")
        }
        #expect(elapsed < 5, "run returned after \(elapsed) s")
    }

    /// The missing worker, when it finally enters a collective, throws the same timeout at entry.
    @Test func aLateWorkerGetsTheSameTimeoutAtEntry() throws {
        let lateError = Outcomes()
        let finished = EventLog()
        #expect(throws: WorkerError.self) {
            _ = try InProcessGroup.run(workers: 2, collectiveTimeout: 0.2) { group -> Int in
                if group.rank == 1 {
                    defer { finished.log("1 finished") }
                    Thread.sleep(forTimeInterval: 0.6)
                    do { try group.barrier() } catch { lateError.add(rank: 1, error: error, at: 0); throw error }
                } else {
                    try group.barrier()
                }
                return 0
            }
        }
        finished.wait(for: "1 finished", seconds: 5)
        #expect(lateError.all.first?.error as? CollectiveError
                == .timeout(missing: [1], waiting: [0], call: "barrier", sequence: 1, step: 0, seconds: 0.2))
    }

    /// Waits shorter than the timeout are not affected: a worker 0.3 s late under a 2 s timeout.
    @Test func aSlowWorkerWithinTheTimeoutIsWaitedFor() throws {
        let sums = try InProcessGroup.run(workers: 3, collectiveTimeout: 2) { group -> Float in
            if group.rank == 1 { Thread.sleep(forTimeInterval: 0.3) }
            var v: [Float] = [Float(group.rank)]
            try group.allReduce(&v, operation: .sum)
            return v[0]
        }
        #expect(sums == [3, 3, 3])
    }

    @Test(arguments: [0, -1, Double.nan, Double.infinity])
    func aTimeoutThatIsNotAPositiveNumberIsRefused(seconds: Double) {
        #expect(throws: CollectiveError.invalidArgument(
            "the collective timeout must be a positive number of seconds (got \(seconds))")) {
            _ = try InProcessGroup.run(workers: 2, collectiveTimeout: seconds) { $0.rank }
        }
    }
}
