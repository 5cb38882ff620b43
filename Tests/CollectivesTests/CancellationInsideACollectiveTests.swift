import Foundation
import Testing
@testable import Collectives

/// A worker cancelled while it is inside a collective, after the opening meeting, when its peers
/// may still be reading or writing its buffer: it must not return (and so let its caller reuse or
/// free that buffer) before every peer is done with it. The interleaving is forced with the
/// group's phase observer: rank 0 pauses right after the opening meeting, rank 1 reaches the
/// closing one, rank 0 cancels rank 1 and gives it 0.3 s to return before touching its memory.
@Suite struct CancellationInsideACollectiveTests {
    enum Call: String, CaseIterable, CustomTestStringConvertible {
        case allReduce, allReduceHalf, allGather, broadcastFloats, broadcastBytes, barrier
        var testDescription: String { rawValue }
    }

    static let count = 4096

    /// Rank 0 holds its peers' memory until rank 1 waits in the closing meeting, then cancels rank 1.
    static func forcingObserver(_ events: EventLog, _ cancellation: GroupCancellation) -> @Sendable (Int, CollectivePhase) -> Void {
        { rank, phase in
            switch (rank, phase) {
            case (1, .closing): events.log("1 closing")
            case (0, .opened):
                events.wait(for: "1 closing", seconds: 5)
                cancellation.cancel(rank: 1, reason: "forced")
                events.wait(for: "1 returned", seconds: 0.3)
            case (0, .closing): events.log("0 done with its peers' memory")
            default: break
            }
        }
    }

    static func perform(_ call: Call, _ group: any Communicator) throws {
        switch call {
        case .allReduce:
            var v = [Float](repeating: Float(group.rank + 1), count: count)
            try group.allReduce(&v, operation: .sum)
        case .allReduceHalf:
            var bits = [UInt16](repeating: HalfWidthFormat.float16.bits(Float(group.rank + 1)), count: count)
            try group.allReduce(&bits, format: .float16, operation: .sum)
        case .allGather:
            _ = try group.allGather([UInt8](repeating: UInt8(group.rank), count: count))
        case .broadcastFloats:
            var v = [Float](repeating: Float(group.rank), count: count)
            try group.broadcast(&v, root: 1)
        case .broadcastBytes:
            _ = try group.broadcast([UInt8](repeating: 9, count: group.rank == 1 ? count : 0), root: 1)
        case .barrier:
            try group.barrier()
        }
    }

    /// The cancelled rank returns only after its peer has left the part of the collective that
    /// uses its memory; it gets `.cancelled`, its peer `.peerFailed` naming it.
    @Test(arguments: Call.allCases)
    func theCancelledRankReturnsOnlyAfterItsPeerIsDoneWithItsMemory(call: Call) throws {
        let cancellation = GroupCancellation()
        let events = EventLog()
        let errors = Outcomes()
        let error = #expect(throws: WorkerError.self) {
            _ = try InProcessGroup.run(workers: 2, cancellation: cancellation,
                                       observer: Self.forcingObserver(events, cancellation)) { group -> Int in
                do { try Self.perform(call, group) } catch {
                    errors.add(rank: group.rank, error: error, at: 0)
                    events.log("\(group.rank) returned")
                    throw error
                }
                events.log("\(group.rank) returned")
                return 0
            }
        }
        #expect(error?.rank == 1)
        let order = events.all
        let peerDone = order.firstIndex(of: "0 done with its peers' memory")
        let cancelledReturned = order.firstIndex(of: "1 returned")
        #expect(peerDone != nil && cancelledReturned != nil && peerDone! < cancelledReturned!, "events: \(order)")
        let byRank = Dictionary(uniqueKeysWithValues: errors.all.map { ($0.rank, $0.error) })
        #expect(byRank[1] as? CollectiveError == .cancelled(rank: 1, reason: "forced"))
        #expect(byRank[0] as? CollectiveError == .peerFailed(rank: 1, reason: "worker 1 was cancelled: forced"))
    }

    /// The same interleaving, observed on the data: once the cancelled rank's all-reduce has
    /// returned, its caller overwrites the buffer with a sentinel. No peer may write into it
    /// afterwards, so the buffer must hold only the sentinel when the group has finished.
    @Test func noPeerWritesIntoTheBufferOfACancelledRankAfterItReturned() throws {
        let cancellation = GroupCancellation()
        let events = EventLog()
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: Self.count)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 2)
        let sentinel: Float = -7
        #expect(throws: WorkerError.self) {
            _ = try InProcessGroup.run(workers: 2, cancellation: cancellation,
                                       observer: Self.forcingObserver(events, cancellation)) { group -> Int in
                if group.rank == 1 {
                    defer { events.log("1 returned") }
                    do { try group.allReduce(buffer, operation: .sum) } catch {
                        buffer.update(repeating: sentinel)
                        throw error
                    }
                } else {
                    var own = [Float](repeating: 1, count: Self.count)
                    try group.allReduce(&own, operation: .sum)
                }
                return 0
            }
        }
        let overwritten = buffer.indices.filter { buffer[$0] != sentinel }
        #expect(overwritten.isEmpty, "\(overwritten.count) elements of rank 1's buffer were written after it returned, from index \(overwritten.first ?? -1)")
    }
}

/// Events of a forced interleaving, in the order they happened.
final class EventLog: @unchecked Sendable {
    private let condition = NSCondition()
    private var events: [String] = []

    func log(_ event: String) {
        condition.lock(); events.append(event); condition.broadcast(); condition.unlock()
    }

    /// Waits at most `seconds` for `event` to be logged.
    func wait(for event: String, seconds: Double) {
        let deadline = Date(timeIntervalSinceNow: seconds)
        condition.lock(); defer { condition.unlock() }
        while !events.contains(event) && condition.wait(until: deadline) {}
    }

    var all: [String] { condition.lock(); defer { condition.unlock() }; return events }
}
