import Collectives

/// A worker's communicator that keeps what this worker puts into every float all-reduce (its
/// contribution, before any other worker's values are added) and what comes back: exactly what
/// a parameter server receiving this worker's messages, or this worker itself, sees.
final class RecordingCommunicator: Communicator {
    struct Record {
        var operation: ReduceOperation
        var contribution: [Float]
        var result: [Float]
    }

    private let inner: any Communicator
    private(set) var records: [Record] = []

    init(_ inner: any Communicator) { self.inner = inner }

    var rank: Int { inner.rank }
    var size: Int { inner.size }
    var traffic: TrafficLedger { inner.traffic }

    func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, operation: ReduceOperation) throws {
        let contribution = Array(buffer)
        try inner.allReduce(buffer, operation: operation)
        records.append(Record(operation: operation, contribution: contribution, result: Array(buffer)))
    }

    func allReduce(_ bits: UnsafeMutableBufferPointer<UInt16>, format: HalfWidthFormat, operation: ReduceOperation) throws {
        try inner.allReduce(bits, format: format, operation: operation)
    }
    func allGather(_ message: [UInt8]) throws -> [[UInt8]] { try inner.allGather(message) }
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws { try inner.broadcast(buffer, root: root) }
    func broadcast(_ message: [UInt8], root: Int) throws -> [UInt8] { try inner.broadcast(message, root: root) }
    func barrier() throws { try inner.barrier() }
}
