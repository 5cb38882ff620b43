/// The transport every gradient reducer drives: a group of `size` workers,
/// this one being `rank`.
///
/// Two backends conform: `InProcessGroup` (worker threads of one process,
/// the embedded default) and `MPICommunicator` (one MPI rank per process).
/// Every collective must be called by every rank of the group, in the same
/// order, with agreeing element counts; a backend detects disagreement and
/// throws `CollectiveError` on every rank instead of hanging.
///
/// Every call records what it moved in `traffic` (see `TrafficLedger`), so
/// reducers report the bytes that actually crossed the communicator.
public protocol Communicator: AnyObject {
    /// This worker's index, `0 ..< size`.
    var rank: Int { get }
    /// The number of workers in the group.
    var size: Int { get }
    /// What this rank has sent and received so far.
    var traffic: TrafficLedger { get }

    /// Replaces `buffer` on every rank by the element-wise reduction of all ranks' buffers.
    /// Sums are taken in a fixed rank order, so results are bit-identical run to run.
    func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, operation: ReduceOperation) throws

    /// Replaces `bits` (fp16 or bf16 patterns, `format`) on every rank by the element-wise
    /// reduction of all ranks' values; 2 bytes per element on the wire (ring formula as for floats).
    /// In-process: each element is accumulated in fp32 in rank order ((x₀ + x₁) + x₂) + …, times
    /// 1/W for `.mean`, and rounded once to `format` (RNE). MPI: a user-defined, non-commutative
    /// MPI_Op that rounds after each pairwise combine (see docs/collectives.md); identical on all ranks.
    func allReduce(_ bits: UnsafeMutableBufferPointer<UInt16>, format: HalfWidthFormat, operation: ReduceOperation) throws

    /// Every rank contributes one byte message (lengths may differ, 0 included);
    /// every rank receives all messages, indexed by rank.
    func allGather(_ message: [UInt8]) throws -> [[UInt8]]

    /// Copies `root`'s buffer into every other rank's buffer (same count everywhere).
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws

    /// Returns `root`'s message on every rank (the other ranks' `message` is ignored).
    func broadcast(_ message: [UInt8], root: Int) throws -> [UInt8]

    /// Returns when every rank has entered the barrier.
    func barrier() throws
}

/// The element-wise reduction of an all-reduce.
public enum ReduceOperation: String, Sendable, Codable {
    /// Σ over ranks.
    case sum
    /// Σ over ranks, then multiplied by 1/size.
    case mean
    /// Element-wise maximum over ranks.
    case max
}

extension Communicator {
    /// All-reduce of a Swift array in place.
    public func allReduce(_ values: inout [Float], operation: ReduceOperation) throws {
        try values.withUnsafeMutableBufferPointer { try allReduce($0, operation: operation) }
    }

    /// Half-width all-reduce of a Swift array of fp16/bf16 patterns in place.
    public func allReduce(_ bits: inout [UInt16], format: HalfWidthFormat, operation: ReduceOperation) throws {
        try bits.withUnsafeMutableBufferPointer { try allReduce($0, format: format, operation: operation) }
    }

    /// Broadcast of a Swift array in place.
    public func broadcast(_ values: inout [Float], root: Int) throws {
        try values.withUnsafeMutableBufferPointer { try broadcast($0, root: root) }
    }
}
