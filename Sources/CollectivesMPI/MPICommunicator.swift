import CMPIShim
import Collectives

/// The MPI backend of `Communicator`: one rank per process, over the system's MPI (OpenMPI on
/// Debian), through the C shim `CMPIShim` (whose header does not include `mpi.h`).
///
/// - Started with `mpirun -np N binary ...` each process is one rank; started without a launcher
///   the process is a 1-rank job.
/// - MPI errors are returned (the group communicator has `MPI_ERRORS_RETURN`) and thrown as
///   `CollectiveError.transport` naming the rank, the call and MPI's message.
/// - With `validation` on (the default), every collective is preceded by one small all-reduce of
///   its signature (operation, element count, root) with MAX over (s, −s), which yields the
///   largest and smallest value of each field on every rank at once. If they differ, the ranks
///   gather all signatures and every rank throws the same `CollectiveError.mismatch` naming the
///   first rank that disagrees with rank 0, both calls and both sizes. The check costs one
///   48-byte all-reduce (a few µs between local ranks) per collective.
/// - All-reduce uses `MPI_Allreduce` in place; mean is the sum times 1/size, as in
///   `InProcessGroup`. MPI chooses the summation order (fixed for a given library, rank count
///   and size, so runs repeat bit for bit); it is not necessarily rank order 0 ..< W.
/// - The variable-size all-gather first all-gathers the lengths, then calls `MPI_Allgatherv`.
/// - Collective timeout (`collectiveTimeout`, default `CollectiveTimeout.defaultSeconds`): a
///   watchdog thread of the C shim notes each collective this rank enters (number, call, step).
///   Once this rank has been inside one collective for longer than the timeout, it asks every
///   other rank over a second duplicate of `MPI_COMM_WORLD` where it is (their watchdogs answer
///   even while their main thread waits inside MPI), waits 2 s for the answers, prints to stderr
///   which ranks did not arrive (no answer: stopped, hung or unreachable; or an answer saying it
///   has not entered that collective) and ends the job with `MPI_Abort`. The collectives
///   themselves stay the blocking MPI calls; the watchdog needs `MPI_THREAD_MULTIPLE`, which the
///   communicator then requests. With `collectiveTimeout` nil, MPI is initialized single-threaded
///   and nothing watches.
///
/// MPI can be initialized once per process: make the communicator once (`MPICommunicator()`),
/// and call `MPICommunicator.finalize()` before the process exits normally. A process that exits
/// without finalizing (a failed rank) makes `mpirun` end the whole job with a non-zero status.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    public let traffic = TrafficLedger()
    /// Check operation and count agreement before each collective (on by default).
    public var validation: Bool
    /// Seconds a collective may wait for the other ranks before the job is aborted (nil: no limit).
    public let collectiveTimeout: Double?
    /// Collectives this rank has entered (the timeout's message numbers them from 1).
    private var sequence: Int64 = 0

    /// Initializes MPI (if it is not yet) and joins the job's group; starts the collective
    /// watchdog unless `collectiveTimeout` is nil or the job has one rank.
    public init(validation: Bool = true, collectiveTimeout: Double? = CollectiveTimeout.defaultSeconds) throws {
        self.validation = validation
        try CollectiveTimeout.validate(collectiveTimeout)
        self.collectiveTimeout = collectiveTimeout
        let status = psgd_mpi_init(collectiveTimeout == nil ? 0 : 1)
        guard status != PSGD_MPI_ALREADY_FINALIZED else {
            throw CollectiveError.transport("MPICommunicator: MPI was already finalized in this process "
                                            + "and cannot be initialized again; make one communicator per process")
        }
        try MPICommunicator.check(status, rank: -1, call: "MPI_Init")
        var r: Int32 = 0, s: Int32 = 0
        try MPICommunicator.check(psgd_mpi_rank(&r), rank: -1, call: "MPI_Comm_rank")
        try MPICommunicator.check(psgd_mpi_size(&s), rank: Int(r), call: "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
        if let collectiveTimeout, size > 1 {
            try MPICommunicator.check(psgd_mpi_watchdog_start(collectiveTimeout), rank: rank, call: "starting the collective watchdog")
        }
    }

    /// Runs one collective under the watchdog's eye (see the type's documentation).
    @inline(__always)
    private func watched<R>(_ call: CallSignature, _ body: () throws -> R) rethrows -> R {
        sequence += 1
        guard collectiveTimeout != nil, size > 1 else { return try body() }
        call.summary.withCString { psgd_mpi_watch_enter(sequence, Int64(traffic.stepNumber), $0) }
        defer { psgd_mpi_watch_leave() }
        return try body()
    }

    /// Whether MPI lets any one thread at a time make the calls (`MPI_THREAD_SERIALIZED` or
    /// more), as `--overlap`'s communication thread needs: checked at start-up, since the level
    /// MPI provides may be below the one requested.
    public var providesSerializedThreads: Bool { psgd_mpi_thread_level() >= 2 }

    /// The thread level MPI provides, by its MPI name.
    public var threadLevel: String {
        ["MPI_THREAD_SINGLE", "MPI_THREAD_FUNNELED", "MPI_THREAD_SERIALIZED", "MPI_THREAD_MULTIPLE"][Int(psgd_mpi_thread_level())]
    }

    /// Ends MPI for this process (`MPI_Finalize`); call once, after the last collective.
    public static func finalize() throws {
        try check(psgd_mpi_finalize(), rank: -1, call: "MPI_Finalize")
    }

    /// Ends every rank of the job with `code` (`MPI_Abort`).
    public static func abort(code: Int32) -> Never {
        _ = psgd_mpi_abort(code)
        fatalError("MPI_Abort returned")
    }

    /// MPI's wall clock in seconds (`MPI_Wtime`).
    public static func wallTime() -> Double { psgd_mpi_wtime() }

    // MARK: - Collectives

    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, operation: ReduceOperation) throws {
        let start = psgd_mpi_wtime()
        let call = CallSignature(operation: .allReduce(operation), count: buffer.count, root: -1)
        try watched(call) {
            try validate(call)
            if size > 1, let base = buffer.baseAddress, buffer.count > 0 {
                let op = operation == .max ? Int32(PSGD_MPI_MAX.rawValue) : Int32(PSGD_MPI_SUM.rawValue)
                try check(psgd_mpi_allreduce_float(base, Int64(buffer.count), op), call: call)
                if operation == .mean {
                    let scale = 1 / Float(size)
                    for i in 0 ..< buffer.count { base[i] *= scale }
                }
            }
        }
        traffic.record(.ringAllReduce(count: buffer.count, workers: size, seconds: psgd_mpi_wtime() - start))
    }

    /// Half-width all-reduce: `MPI_Allreduce` on `MPI_UINT16_T` with the shim's user-defined,
    /// non-commutative op (each pairwise combine in fp32, rounded to `format`, RNE), 2 bytes per
    /// element on the wire. `.mean` is that sum widened, × 1/size in fp32 and rounded again. At
    /// W = 2 the sum is rounded once, as in-process; above, each combine rounds (docs/collectives.md).
    public func allReduce(_ bits: UnsafeMutableBufferPointer<UInt16>, format: HalfWidthFormat,
                          operation: ReduceOperation) throws {
        let start = psgd_mpi_wtime()
        let call = CallSignature(operation: .allReduceHalf(format, operation), count: bits.count, root: -1)
        try watched(call) {
            try validate(call)
            if size > 1, let base = bits.baseAddress, bits.count > 0 {
                let op = operation == .max ? Int32(PSGD_MPI_MAX.rawValue) : Int32(PSGD_MPI_SUM.rawValue)
                let code = format == .float16 ? Int32(PSGD_MPI_FLOAT16.rawValue) : Int32(PSGD_MPI_BFLOAT16.rawValue)
                try check(psgd_mpi_allreduce_half(base, Int64(bits.count), code, op), call: call)
                if operation == .mean {
                    let scale = 1 / Float(size)
                    for i in 0 ..< bits.count { base[i] = format.bits(format.float(base[i]) * scale) }
                }
            }
        }
        traffic.record(.ringAllReduce(count: bits.count, workers: size, seconds: psgd_mpi_wtime() - start, elementBytes: 2))
    }

    public func allGather(_ message: [UInt8]) throws -> [[UInt8]] {
        let call = CallSignature(operation: .allGather, count: message.count, root: -1)
        return try watched(call) { try gather(message, call) }
    }

    private func gather(_ message: [UInt8], _ call: CallSignature) throws -> [[UInt8]] {
        let start = psgd_mpi_wtime()
        try validate(call)
        var lengths = [Int64](repeating: 0, count: size)
        var own = Int64(message.count)
        try check(psgd_mpi_allgather_int64(&own, 1, &lengths), call: call)
        let total = lengths.reduce(0, +)
        guard total <= Int64(Int32.max) else {
            throw CollectiveError.transport("rank \(rank) in allGather: the messages total \(total) bytes, "
                                            + "more than MPI_Allgatherv's limit of \(Int32.max)")
        }
        let counts = lengths.map { Int32($0) }
        var displacements = [Int32](repeating: 0, count: size)
        for r in 1 ..< max(size, 1) { displacements[r] = displacements[r - 1] + counts[r - 1] }
        var all = [UInt8](repeating: 0, count: Int(total))
        if total > 0 {
            try message.withUnsafeBytes { mine in
                try all.withUnsafeMutableBytes { everything in
                    try check(psgd_mpi_allgatherv_bytes(mine.baseAddress, Int32(message.count),
                                                        everything.baseAddress, counts, displacements), call: call)
                }
            }
        }
        let gathered = (0 ..< size).map { r in
            Array(all[Int(displacements[r]) ..< Int(displacements[r]) + Int(counts[r])])
        }
        traffic.record(.ringAllGather(messageBytes: lengths.map { Int($0) }, rank: rank,
                                      seconds: psgd_mpi_wtime() - start))
        return gathered
    }

    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {
        guard (0 ..< size).contains(root) else { throw CollectiveError.invalidRoot(root: root, size: size) }
        let start = psgd_mpi_wtime()
        let call = CallSignature(operation: .broadcastFloats, count: buffer.count, root: root)
        try watched(call) {
            try validate(call)
            if size > 1, let base = buffer.baseAddress, buffer.count > 0 {
                try check(psgd_mpi_broadcast_float(base, Int64(buffer.count), Int32(root)), call: call)
            }
        }
        traffic.record(.binomialBroadcast(bytes: 4 * buffer.count, rank: rank, root: root, workers: size,
                                          seconds: psgd_mpi_wtime() - start))
    }

    /// The root's length is broadcast first, then its bytes.
    public func broadcast(_ message: [UInt8], root: Int) throws -> [UInt8] {
        guard (0 ..< size).contains(root) else { throw CollectiveError.invalidRoot(root: root, size: size) }
        let start = psgd_mpi_wtime()
        let call = CallSignature(operation: .broadcastBytes, count: message.count, root: root)
        var result = message
        try watched(call) {
            try validate(call)
            if size > 1 {
                var length = Int64(message.count)
                try check(psgd_mpi_broadcast_bytes(&length, 8, Int32(root)), call: call)
                if rank != root { result = [UInt8](repeating: 0, count: Int(length)) }
                if length > 0 {
                    try result.withUnsafeMutableBytes {
                        try check(psgd_mpi_broadcast_bytes($0.baseAddress, length, Int32(root)), call: call)
                    }
                }
            }
        }
        traffic.record(.binomialBroadcast(bytes: result.count, rank: rank, root: root, workers: size,
                                          seconds: psgd_mpi_wtime() - start))
        return result
    }

    public func barrier() throws {
        let start = psgd_mpi_wtime()
        let call = CallSignature(operation: .barrier, count: 0, root: -1)
        try watched(call) {
            try validate(call)
            if size > 1 { try check(psgd_mpi_barrier(), call: call) }
        }
        traffic.record(.barrier(workers: size, seconds: psgd_mpi_wtime() - start))
    }

    /// A plain `MPI_Allreduce` (sum, in place) through the shim with no validation and no
    /// accounting: the baseline the benchmark compares this communicator against.
    public func rawAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        try MPICommunicator.check(psgd_mpi_allreduce_float(base, Int64(buffer.count), Int32(PSGD_MPI_SUM.rawValue)),
                                  rank: rank, call: "MPI_Allreduce")
    }

    // MARK: - Validation

    /// Checks that every rank is entering the same call (see the type's documentation).
    func validate(_ call: CallSignature) throws {
        guard validation, size > 1 else { return }
        let fields = call.fields
        var extremes = fields + fields.map { -$0 }
        try check(psgd_mpi_allreduce_int64(&extremes, Int32(extremes.count), Int32(PSGD_MPI_MAX.rawValue)),
                  call: call, validating: true)
        let n = fields.count
        let agree = (0 ..< n).allSatisfy { extremes[$0] == -extremes[n + $0] }
        if agree { return }
        var all = [Int64](repeating: 0, count: n * size)
        try check(psgd_mpi_allgather_int64(fields, Int32(n), &all), call: call, validating: true)
        let signatures = (0 ..< size).map { CallSignature(fields: Array(all[n * $0 ..< n * ($0 + 1)])) }
        let other = (1 ..< size).first { signatures[$0] != signatures[0] }!
        throw CollectiveError.mismatch(rank: other, call: signatures[other].summary,
                                       otherRank: 0, otherCall: signatures[0].summary)
    }

    // MARK: - Errors

    private func check(_ code: Int32, call: CallSignature, validating: Bool = false) throws {
        try MPICommunicator.check(code, rank: rank, call: validating ? "validation of \(call.summary)" : call.summary)
    }

    static func check(_ code: Int32, rank: Int, call: String) throws {
        guard code != 0 else { return }
        var text = [CChar](repeating: 0, count: 512)
        psgd_mpi_error_string(code, &text, Int32(text.count))
        let message = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        throw CollectiveError.transport("MPI error \(code) on rank \(rank) in \(call): \(message)")
    }
}
