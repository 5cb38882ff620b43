import Testing
@testable import Collectives

@Suite struct TrafficLedgerTests {
    static func record(_ payload: Int) -> TrafficRecord {
        TrafficRecord(kind: .allReduce, payloadBytes: payload, bytesSent: payload, bytesReceived: payload, seconds: 0, workers: 2)
    }

    /// A mark reads exactly what was recorded after it, within a step and after earlier steps were dropped.
    @Test func aMarkReadsTheRecordsAfterIt() {
        let ledger = TrafficLedger()
        ledger.beginStep()
        ledger.record(Self.record(1))
        let middle = ledger.mark()
        #expect(ledger.records(since: middle).isEmpty)
        ledger.record(Self.record(2))
        ledger.record(Self.record(3))
        #expect(ledger.records(since: middle).map(\.payloadBytes) == [2, 3])
        ledger.beginStep()
        let next = ledger.mark()
        ledger.record(Self.record(4))
        #expect(ledger.records(since: next).map(\.payloadBytes) == [4])
        // A mark from a step whose records are dropped reads from the current step's start.
        #expect(ledger.records(since: middle).map(\.payloadBytes) == [4])
        #expect(ledger.cumulative.payloadBytes == 10 && ledger.step.payloadBytes == 4)
    }
}
