import Dispatch
import Foundation
import Testing
@testable import Collectives

/// Rank r's test vector: element i is a value that depends on both r and i, exactly
/// representable so sums are exact in Float (integers below 2²⁴).
func testVector(rank: Int, count: Int) -> [Float] {
    (0..<count).map { Float((($0 * 7 + rank * 13) % 101) - 50) }
}

@Suite struct InProcessGroupTests {
    static let workerCounts = [1, 2, 3, 4, 8]
    static let sizes = [0, 1, 7, 1_000_003]

    @Test(arguments: workerCounts)
    func allReduceMatchesNaiveReference(workers: Int) throws {
        for n in Self.sizes {
            let results = try InProcessGroup.run(workers: workers) { group -> [[Float]] in
                var sum = testVector(rank: group.rank, count: n)
                try group.allReduce(&sum, operation: .sum)
                var mean = testVector(rank: group.rank, count: n)
                try group.allReduce(&mean, operation: .mean)
                var max = testVector(rank: group.rank, count: n)
                try group.allReduce(&max, operation: .max)
                return [sum, mean, max]
            }
            let inputs = (0..<workers).map { testVector(rank: $0, count: n) }
            let sum = (0..<n).map { i in inputs.reduce(Float(0)) { $0 + $1[i] } }
            let max = (0..<n).map { i in inputs.map { $0[i] }.max()! }
            for r in 0..<workers {
                #expect(results[r][0] == sum, "sum, W=\(workers), n=\(n), rank \(r)")
                #expect(results[r][2] == max, "max, W=\(workers), n=\(n), rank \(r)")
                // mean = (Σ in rank order) × (1/W): check against that exact formula.
                #expect(results[r][1] == sum.map { $0 * (1 / Float(workers)) })
            }
        }
    }

    /// Sums of non-integers depend on order; ours is fixed (rank 0, 1, …), so every rank and
    /// every run gets the same bits.
    @Test func allReduceIsBitIdenticalAcrossRanksAndRuns() throws {
        let n = 100_001
        func once() throws -> [[Float]] {
            try InProcessGroup.run(workers: 3) { group in
                var v = (0..<n).map { Float(sin(Double($0 * (group.rank + 1)))) * 1e-3 }
                try group.allReduce(&v, operation: .sum)
                return v
            }
        }
        let a = try once(), b = try once()
        #expect(a[0] == a[1] && a[1] == a[2])
        #expect(a == b)
        // And the bits are those of the documented order ((v₀ + v₁) + v₂), element by element.
        let inputs = (0..<3).map { r in (0..<n).map { Float(sin(Double($0 * (r + 1)))) * 1e-3 } }
        var reference = [Float](repeating: 0, count: n)
        for i in 0..<n {
            let firstTwo: Float = inputs[0][i] + inputs[1][i]
            reference[i] = firstTwo + inputs[2][i]
        }
        #expect(a[0] == reference)
    }

    @Test(arguments: workerCounts)
    func allGatherOfVariableSizesIncludingEmpty(workers: Int) throws {
        let results = try InProcessGroup.run(workers: workers) { group in
            // Rank r sends r·37 mod 5 bytes (so some ranks send nothing).
            try group.allGather((0..<(group.rank * 37 % 5)).map { UInt8(truncatingIfNeeded: $0 + group.rank * 10) })
        }
        let expected = (0..<workers).map { r in (0..<(r * 37 % 5)).map { UInt8(truncatingIfNeeded: $0 + r * 10) } }
        for r in 0..<workers { #expect(results[r] == expected) }
    }

    @Test(arguments: workerCounts)
    func broadcastFromEveryRoot(workers: Int) throws {
        for root in 0..<workers {
            let results = try InProcessGroup.run(workers: workers) { group -> ([Float], [UInt8]) in
                var values = testVector(rank: group.rank, count: 1001)
                try group.broadcast(&values, root: root)
                let bytes = try group.broadcast(group.rank == root ? Array("root \(root)".utf8) : [], root: root)
                try group.barrier()
                return (values, bytes)
            }
            for r in 0..<workers {
                #expect(results[r].0 == testVector(rank: root, count: 1001))
                #expect(results[r].1 == Array("root \(root)".utf8))
            }
        }
    }

    /// Counters equal the formulas of `TrafficRecord` exactly.
    @Test func byteCountersEqualTheFormulas() throws {
        let ledgers = try InProcessGroup.run(workers: 4) { group -> [TrafficRecord] in
            var v = [Float](repeating: 1, count: 1003)
            try group.allReduce(&v, operation: .sum)                 // 4012 bytes
            _ = try group.allGather([UInt8](repeating: 0, count: group.rank * 10))  // 0, 10, 20, 30
            var b = [Float](repeating: 0, count: 25)
            try group.broadcast(&b, root: 1)                          // 100 bytes from rank 1
            return group.traffic.stepRecords
        }
        for (rank, records) in ledgers.enumerated() {
            // Ring all-reduce: 2·(P − ⌊P/W⌋) = 2·(4012 − 1003) = 6018 bytes each way.
            #expect(records[0] == TrafficRecord(kind: .allReduce, payloadBytes: 4012, bytesSent: 6018,
                                                bytesReceived: 6018, seconds: records[0].seconds, workers: 4))
            // Ring all-gather: own message to each of the W−1 others; receive the others' messages.
            #expect(records[1].bytesSent == 3 * rank * 10)
            #expect(records[1].bytesReceived == 60 - rank * 10)
            // Binomial tree from root 1 (relative ranks: 1→0, 2→1, 3→2, 0→3): the root sends to
            // relative 1 and 2; relative 1 sends to 3; everyone but the root receives once.
            let relative = (rank - 1 + 4) % 4
            #expect(records[2].bytesSent == [200, 100, 0, 0][relative])
            #expect(records[2].bytesReceived == (relative == 0 ? 0 : 100))
        }
        #expect(TrafficLedger.ringAllReduceBytes(payloadBytes: 44_695_848, workers: 16) == 2 * (44_695_848 - 2_793_490))
    }

    @Test func aFailingWorkerMakesTheOthersFailFastNamingIt() throws {
        struct Boom: Error, CustomStringConvertible { var description: String { "boom at step 3" } }
        let start = DispatchTime.now().uptimeNanoseconds
        do {
            _ = try InProcessGroup.run(workers: 4) { group -> Int in
                for step in 0..<10 {
                    if group.rank == 2 && step == 3 { throw Boom() }
                    var v: [Float] = [1, 2, 3]
                    try group.allReduce(&v, operation: .sum)
                }
                return 0
            }
            Issue.record("run should have thrown")
        } catch let error as WorkerError {
            #expect(error.rank == 2)
            #expect("\(error)".contains("boom at step 3"))
        }
        #expect(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 < 1)

        // The peers' own errors name the failed rank and its error.
        let peerErrors = PeerErrorLog()
        _ = try? InProcessGroup.run(workers: 3) { group -> Int in
            if group.rank == 0 { throw Boom() }
            do { try group.barrier() } catch { peerErrors.append("\(error)") }
            return 0
        }
        #expect(peerErrors.values.count == 2)
        #expect(peerErrors.values.allSatisfy { $0.contains("worker 0 failed") && $0.contains("boom at step 3") })
    }

    @Test func aWorkerThatFinishesEarlyDoesNotHangTheOthers() throws {
        #expect(throws: CollectiveError.self) {
            _ = try InProcessGroup.run(workers: 2) { group -> Int in
                if group.rank == 1 { try group.barrier() }
                return 0
            }
        }
    }

    @Test func mismatchedCountsGiveTheSameClearErrorOnEveryRank() throws {
        let errors = PeerErrorLog()
        _ = try? InProcessGroup.run(workers: 3) { group -> Int in
            var v = [Float](repeating: 0, count: group.rank == 2 ? 99 : 100)
            do { try group.allReduce(&v, operation: .sum) } catch { errors.append("\(error)"); throw error }
            return 0
        }
        #expect(errors.values.count == 3)
        #expect(Set(errors.values).count == 1)
        #expect(errors.values[0] == "collective mismatch: rank 2 called allReduce.sum(99 elements) while rank 0 called allReduce.sum(100 elements)")

        let kinds = PeerErrorLog()
        _ = try? InProcessGroup.run(workers: 2) { group -> Int in
            do {
                if group.rank == 0 { try group.barrier() } else { _ = try group.allGather([1]) }
            } catch { kinds.append("\(error)"); throw error }
            return 0
        }
        #expect(kinds.values.count == 2 && kinds.values.allSatisfy { $0.contains("rank 1 called allGather while rank 0 called barrier") })
    }

    @Test func invalidRootIsAnError() {
        let error = #expect(throws: WorkerError.self) {
            _ = try InProcessGroup.run(workers: 2) { group -> Int in
                var v: [Float] = [1]
                try group.broadcast(&v, root: 5)
                return 0
            }
        }
        #expect(error?.underlying as? CollectiveError == .invalidRoot(root: 5, size: 2))
    }
}

final class PeerErrorLog: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [String] = []
    func append(_ s: String) { lock.lock(); values.append(s); lock.unlock() }
}
