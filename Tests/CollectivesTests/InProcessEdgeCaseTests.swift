import Dispatch
import Foundation
import Testing
@testable import Collectives

@Suite struct InProcessEdgeCaseTests {
    static func gatherMessage(rank: Int, large: Int) -> [UInt8] {
        let length: Int
        if rank == 0 { length = large } else if rank % 2 == 0 { length = 17 } else { length = 0 }
        return [UInt8](repeating: UInt8(rank), count: length)
    }

    /// Broadcast and all-gather of more than 10⁶ elements/bytes, from a non-zero root.
    @Test(arguments: [2, 3, 8])
    func largeBroadcastAndAllGather(workers: Int) throws {
        let n = 1_000_003
        let results = try InProcessGroup.run(workers: workers) { group -> ([Float], [UInt8], [[UInt8]]) in
            var values = testVector(rank: group.rank, count: n)
            try group.broadcast(&values, root: workers - 1)
            let bytes = try group.broadcast(group.rank == 1 ? [UInt8](repeating: 5, count: n) : [], root: 1)
            // Rank 0 sends 10⁶ + 3 bytes, every odd rank sends nothing.
            let message = Self.gatherMessage(rank: group.rank, large: n)
            let gathered = try group.allGather(message)
            return (values, bytes, gathered)
        }
        let expectedGather = (0..<workers).map { Self.gatherMessage(rank: $0, large: n) }
        for r in 0..<workers {
            #expect(results[r].0 == testVector(rank: workers - 1, count: n))
            #expect(results[r].1 == [UInt8](repeating: 5, count: n))
            #expect(results[r].2 == expectedGather)
        }
    }

    /// After a mismatch every rank saw, a fast rank must not publish its next call before a slow
    /// rank has read this round's descriptors: repeated many times, every round must still agree.
    @Test func groupStaysUsableAfterRepeatedMismatches() throws {
        let sums = try InProcessGroup.run(workers: 4) { group -> Float in
            var total: Float = 0
            for round in 0..<200 {
                var v = [Float](repeating: 1, count: group.rank == 3 ? 3 : 2)
                do {
                    try group.allReduce(&v, operation: .sum)
                    Issue.record("round \(round): mismatch not detected")
                } catch let error as CollectiveError {
                    #expect(error == .mismatch(rank: 3, call: "allReduce.sum(3 elements)",
                                               otherRank: 0, otherCall: "allReduce.sum(2 elements)"))
                }
                var ok: [Float] = [Float(group.rank)]
                try group.allReduce(&ok, operation: .sum)
                total += ok[0]
            }
            return total
        }
        #expect(sums == Array(repeating: 200 * 6, count: 4))
    }

    /// The rank that failed first is the one `run` names, even if a lower rank then fails with an
    /// error of its own (not the peer echo).
    @Test func runRethrowsTheFirstFailureInTime() throws {
        struct Own: Error, CustomStringConvertible { var rank: Int; var description: String { "own error of \(rank)" } }
        let error = #expect(throws: WorkerError.self) {
            _ = try InProcessGroup.run(workers: 3) { group -> Int in
                if group.rank == 2 { throw Own(rank: 2) }
                do { try group.barrier() } catch { throw Own(rank: group.rank) }
                return 0
            }
        }
        #expect(error?.rank == 2)
        #expect("\(error!)" == "worker 2: own error of 2")
    }

    @Test func zeroWorkersIsAnErrorNotACrash() {
        #expect(throws: CollectiveError.invalidArgument("InProcessGroup.run needs at least one worker, got 0")) {
            _ = try InProcessGroup.run(workers: 0) { $0.rank }
        }
    }

    /// A worker blocked in a long collective while another throws returns within 1 s.
    @Test func blockedWorkersWakeWithinOneSecond() throws {
        struct Late: Error {}
        let start = DispatchTime.now().uptimeNanoseconds
        var woke: [Double] = []
        let lock = NSLock()
        _ = try? InProcessGroup.run(workers: 8) { group -> Int in
            if group.rank == 5 {
                Thread.sleep(forTimeInterval: 0.2)
                throw Late()
            }
            var v = [Float](repeating: 1, count: 1000)
            do { try group.allReduce(&v, operation: .sum) } catch {
                lock.lock()
                woke.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
                lock.unlock()
                throw error
            }
            return 0
        }
        #expect(woke.count == 7)
        #expect(woke.allSatisfy { $0 >= 0.2 && $0 < 1.2 })
    }

    @Test func sharedTrafficFormulas() {
        // Binomial tree over 8 from root 0: 0→{1,2,4}, 1→{3,5}, 2→{6}, 3→{7}.
        #expect((0..<8).map { TrafficRecord.binomialTreeChildren(relativeRank: $0, workers: 8) } == [3, 2, 1, 1, 0, 0, 0, 0])
        #expect((0..<5).map { TrafficRecord.binomialTreeChildren(relativeRank: $0, workers: 5) } == [3, 1, 0, 0, 0])
        let gather = TrafficRecord.ringAllGather(messageBytes: [10, 0, 30], rank: 0, seconds: 0)
        #expect(gather.bytesSent == 20 && gather.bytesReceived == 30 && gather.payloadBytes == 10 && gather.workers == 3)
        let reduce = TrafficRecord.ringAllReduce(count: 11_173_962, workers: 16, seconds: 0)
        // 2·(44,695,848 − ⌊44,695,848 / 16⌋) = 2·(44,695,848 − 2,793,490) = 83,804,716.
        #expect(reduce.bytesSent == 83_804_716 && reduce.bytesReceived == 83_804_716)
    }
}
