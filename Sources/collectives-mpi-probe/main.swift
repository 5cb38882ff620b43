// collectives-mpi-probe: run under `mpirun -np N` by CollectivesMPITests (or by hand) to check the
// MPI backend against naive references. Each mode prints one line per rank and exits 0 only if
// every check on that rank passed.
//
//   collectives-mpi-probe check      every collective vs. a naive reference, byte counters vs. formulas
//   collectives-mpi-probe mismatch   different counts / operations across ranks -> the same error everywhere
//   collectives-mpi-probe fail       the last rank exits with status 3 after one collective
//   collectives-mpi-probe half-reducer  the fp16 / bf16 reducers (AllReduceReducer) over MPI
//   collectives-mpi-probe stall T   collective timeout T s; every rank prints its pid, then all-reduces
//                                   in a loop for 60 s (the test stops the last rank with SIGSTOP)
//   collectives-mpi-probe late T    collective timeout T s; the last rank sleeps T + 4 s before its
//                                   second collective (alive, answering, but late)
import Collectives
import CollectivesMPI
import GradientCompression
import LinearAlgebra
#if canImport(Glibc)
import Glibc
#endif

/// Rank r's element i: small integers, so every summation order gives the exact same Float.
func testVector(rank: Int, count: Int) -> [Float] {
    (0 ..< count).map { Float((($0 &* 7 &+ rank &* 13) % 101) - 50) }
}

func message(rank: Int) -> [UInt8] {
    // Ranks 1 and 4 send nothing; rank 0 sends more than 10⁶ bytes.
    let length = rank % 3 == 1 ? 0 : (rank == 0 ? 1_000_003 : 37 * rank + 5)
    return (0 ..< length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ rank) }
}

final class Checks {
    var passed = 0
    var failures: [String] = []
    func expect(_ condition: Bool, _ what: @autoclosure () -> String) {
        if condition { passed += 1 } else { failures.append(what()) }
    }
}

func runChecks(_ comm: MPICommunicator) throws -> Checks {
    let checks = Checks()
    let w = comm.size, rank = comm.rank
    for n in [0, 1, 7, 1_000_003] {
        let inputs = (0 ..< w).map { testVector(rank: $0, count: n) }
        let sum = (0 ..< n).map { i in inputs.reduce(Float(0)) { $0 + $1[i] } }
        let maxima = (0 ..< n).map { i in inputs.map { $0[i] }.max()! }
        for operation in [ReduceOperation.sum, .mean, .max] {
            var values = testVector(rank: rank, count: n)
            comm.traffic.beginStep()
            try comm.allReduce(&values, operation: operation)
            let expected = operation == .sum ? sum : operation == .max ? maxima : sum.map { $0 * (1 / Float(w)) }
            checks.expect(values == expected, "allReduce.\(operation) n=\(n) differs from the reference")
            // Ring all-reduce: 2·(P − ⌊P/W⌋) bytes each way, 0 for one rank.
            let payload = 4 * n
            let ring = w == 1 ? 0 : 2 * (payload - payload / w)
            let record = comm.traffic.stepRecords.last!
            checks.expect(record.kind == .allReduce && record.payloadBytes == payload && record.bytesSent == ring
                          && record.bytesReceived == ring && record.workers == w,
                          "allReduce record \(record) != ring formula (payload \(payload), moved \(ring))")
        }
        for root in 0 ..< w {
            var values = testVector(rank: rank, count: n)
            comm.traffic.beginStep()
            try comm.broadcast(&values, root: root)
            checks.expect(values == inputs[root], "broadcast n=\(n) root \(root) differs from root's data")
            let bytes = try comm.broadcast(rank == root ? message(rank: n % 3) : [7, 7], root: root)
            checks.expect(bytes == message(rank: n % 3), "byte broadcast root \(root) differs")
            // Binomial tree: relative rank v sends to v + 2^k for 2^k > v, v + 2^k < W.
            let v = (rank - root + w) % w
            var children = 0
            var step = 1
            while step < w { if v < step && v + step < w { children += 1 }; step *= 2 }
            let record = comm.traffic.stepRecords[0]
            checks.expect(record.bytesSent == children * 4 * n && record.bytesReceived == (v == 0 ? 0 : 4 * n)
                          && record.payloadBytes == (v == 0 ? 4 * n : 0),
                          "broadcast record \(record) != tree formula (children \(children))")
        }
    }
    comm.traffic.beginStep()
    let gathered = try comm.allGather(message(rank: rank))
    checks.expect(gathered == (0 ..< w).map { message(rank: $0) }, "allGather differs from the messages sent")
    let lengths = (0 ..< w).map { message(rank: $0).count }
    let record = comm.traffic.stepRecords[0]
    checks.expect(record.bytesSent == (w - 1) * lengths[rank]
                  && record.bytesReceived == lengths.reduce(0, +) - lengths[rank],
                  "allGather record \(record) != ring formula")
    let empty = try comm.allGather([])
    checks.expect(empty == Array(repeating: [], count: w), "all-empty allGather")
    try comm.barrier()
    checks.expect(comm.traffic.step.collectives == 3, "ledger counts \(comm.traffic.step.collectives) collectives, not 3")
    try runHalfChecks(comm, checks)
    return checks
}

/// Rank r's half-width input i: at W = 2, values whose sums need rounding (the documented
/// result is then checked bit for bit); above, small integers whose every partial sum is exact in
/// both formats (|Σ| ≤ 8 · 15 < 256), so any grouping MPI picks must give the exact sum.
func halfInput(rank: Int, count: Int, workers: Int, format: HalfWidthFormat) -> [UInt16] {
    (0 ..< count).map { i in
        let value = workers == 2 ? Float(((i &* 37 &+ rank &* 101) % 2001) - 1000) * 0.01337
                                 : Float(((i &* 7 &+ rank &* 13) % 31) - 15)
        return format.bits(value)
    }
}

func runHalfChecks(_ comm: MPICommunicator, _ checks: Checks) throws {
    let w = comm.size, rank = comm.rank
    for format in HalfWidthFormat.allCases {
        for n in [0, 1, 7, 100_003] {
            let inputs = (0 ..< w).map { halfInput(rank: $0, count: n, workers: w, format: format) }
            for operation in [ReduceOperation.sum, .mean, .max] {
                var bits = halfInput(rank: rank, count: n, workers: w, format: format)
                comm.traffic.beginStep()
                try comm.allReduce(&bits, format: format, operation: operation)
                // Documented MPI result: fp32 combines in rank order, rounded per combine (exact
                // partial sums here above W = 2); mean = that sum × (1/W), rounded again.
                let expected: [UInt16] = (0 ..< n).map { i in
                    var acc = format.float(inputs[0][i])
                    for r in 1 ..< w {
                        let x = format.float(inputs[r][i])
                        acc = format.float(format.bits(operation == .max ? (x > acc ? x : acc) : acc + x))
                    }
                    return operation == .mean ? format.bits(acc * (1 / Float(w))) : format.bits(acc)
                }
                checks.expect(bits == expected, "allReduce.\(format).\(operation) n=\(n) differs from the reference")
                let mine = bits.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] }
                let everyone = try comm.allGather(mine)
                checks.expect(everyone.allSatisfy { $0 == mine }, "allReduce.\(format).\(operation) n=\(n) differs across ranks")
                let payload = 2 * n, ring = w == 1 ? 0 : 2 * (payload - payload / w)
                let record = comm.traffic.stepRecords[0]
                checks.expect(record.kind == .allReduce && record.payloadBytes == payload && record.bytesSent == ring
                              && record.bytesReceived == ring, "half allReduce record \(record) != 2-byte ring formula")
            }
        }
    }
}

func runMismatch(_ comm: MPICommunicator) throws -> Checks {
    let checks = Checks()
    let w = comm.size, rank = comm.rank
    var values = [Float](repeating: 1, count: rank == w - 1 ? 99 : 100)
    do {
        try comm.allReduce(&values, operation: .sum)
        checks.expect(false, "allReduce with 99 vs 100 elements did not throw")
    } catch let error as CollectiveError {
        let expected = CollectiveError.mismatch(rank: w - 1, call: "allReduce.sum(99 elements)",
                                                otherRank: 0, otherCall: "allReduce.sum(100 elements)")
        checks.expect(error == expected, "got \(error), expected \(expected)")
        print("rank \(rank): \(error)")
    }
    do {
        var bits = [UInt16](repeating: 0, count: 10)
        try comm.allReduce(&bits, format: rank == 0 ? .float16 : .bfloat16, operation: .sum)
        checks.expect(false, "fp16 vs bf16 allReduce did not throw")
    } catch let error as CollectiveError {
        checks.expect(error == .mismatch(rank: 1, call: "allReduce.bfloat16.sum(10 elements)",
                                         otherRank: 0, otherCall: "allReduce.float16.sum(10 elements)"), "got \(error)")
    }
    do {
        if rank == 0 { try comm.barrier() } else { _ = try comm.allGather([1, 2]) }
        checks.expect(false, "barrier vs allGather did not throw")
    } catch let error as CollectiveError {
        checks.expect(error == .mismatch(rank: 1, call: "allGather", otherRank: 0, otherCall: "barrier"),
                      "got \(error)")
    }
    // The group still works after a mismatch every rank saw.
    var ones = [Float](repeating: 1, count: 5)
    try comm.allReduce(&ones, operation: .sum)
    checks.expect(ones == [Float](repeating: Float(w), count: 5), "allReduce after the mismatch gave \(ones)")
    return checks
}

func runFailure(_ comm: MPICommunicator) throws -> Checks {
    var values = [Float](repeating: 1, count: 1000)
    try comm.allReduce(&values, operation: .sum)
    if comm.rank == comm.size - 1 {
        print("rank \(comm.rank): exiting with status 3 on purpose")
        exit(3)
    }
    for _ in 0 ..< 1000 { try comm.allReduce(&values, operation: .sum) }
    return Checks()
}

/// `AllReduceReducer(HalfPrecisionCompressor(...))` over MPI: the average equals the documented MPI
/// result (each rank's values rounded to the format; their sum rounded by the op at each combine;
/// × 1/W rounded again), identical on every rank, with 2-byte ring all-reduce counts.
func runHalfReducer(_ comm: MPICommunicator) throws -> Checks {
    let checks = Checks()
    let w = comm.size
    func gradients(rank: Int) throws -> [Tensor] {
        let value = { (i: Int) in Float(sin(Double(i &* (rank &+ 2)) * 0.37)) * Float(1 << (i % 7)) }
        return [try Tensor(shape: [300, 7], scalars: (0 ..< 2100).map(value)), try Tensor(shape: [11], scalars: (0 ..< 11).map(value))]
    }
    for format in [HalfPrecisionCompressor.Format.fp16, .bf16] {
        var reducer = AllReduceReducer(HalfPrecisionCompressor(format))
        var g = try gradients(rank: comm.rank)
        let stats = try reducer.reduce(&g, over: comm)
        let wire: HalfWidthFormat = format == .fp16 ? .float16 : .bfloat16
        let inputs = try (0 ..< w).map(gradients)
        for t in g.indices {
            let expected: [Float] = (0 ..< g[t].count).map { j in
                var acc = wire.float(wire.bits(inputs[0][t].scalars[j]))
                for r in 1 ..< max(w, 1) { acc = wire.float(wire.bits(acc + wire.float(wire.bits(inputs[r][t].scalars[j])))) }
                return wire.float(wire.bits(acc * (1 / Float(w))))
            }
            checks.expect(g[t].scalars == expected, "\(format) reducer: tensor \(t) differs from the documented MPI result")
        }
        let mine = g.flatMap(\.scalars).flatMap { v in withUnsafeBytes(of: v.bitPattern) { Array($0) } }
        checks.expect(try comm.allGather(mine).allSatisfy { $0 == mine }, "\(format) reducer: ranks disagree")
        let payload = 2 * 2111, ring = w == 1 ? 0 : 2 * (payload - payload / w)
        checks.expect(stats.payloadBytes == payload && stats.bytesSent == ring && stats.bytesReceived == ring,
                      "\(format) reducer: stats \(stats.payloadBytes)/\(stats.bytesSent)/\(stats.bytesReceived) != 2-byte ring")
    }
    return checks
}

/// Prints "rank r of W: pid P ready" once every rank is up, then all-reduces 1000 floats (one step
/// each) every 2 ms for 60 s. The job is meant to be stopped from outside before that.
func runStall(_ comm: MPICommunicator) throws -> Checks {
    var values = [Float](repeating: 1, count: 1000)
    try comm.allReduce(&values, operation: .sum)
    print("rank \(comm.rank) of \(comm.size): pid \(getpid()) ready")
    fflush(stdout)
    let start = MPICommunicator.wallTime()
    while MPICommunicator.wallTime() - start < 60 {
        comm.traffic.beginStep()
        try comm.allReduce(&values, operation: .sum)
        usleep(2000)
    }
    let checks = Checks()
    checks.expect(false, "nothing stopped the job within 60 s")
    return checks
}

/// The last rank sleeps `timeout` + 4 s before its second collective: the others time out waiting.
func runLate(_ comm: MPICommunicator, timeout: Double) throws -> Checks {
    var values = [Float](repeating: 1, count: 10)
    try comm.allReduce(&values, operation: .sum)
    if comm.rank == comm.size - 1 { usleep(UInt32((timeout + 4) * 1e6)) }
    comm.traffic.beginStep()
    _ = try comm.allGather([1, 2, 3])
    let checks = Checks()
    checks.expect(false, "the late rank did not end the job")
    return checks
}

let arguments = Array(CommandLine.arguments.dropFirst())
let mode = arguments.first ?? "check"
do {
    let timeout = arguments.count > 1 ? Double(arguments[1]) : CollectiveTimeout.defaultSeconds
    let comm = try MPICommunicator(collectiveTimeout: timeout == 0 ? nil : timeout)
    let checks: Checks
    switch mode {
    case "check": checks = try runChecks(comm)
    case "mismatch": checks = try runMismatch(comm)
    case "fail": checks = try runFailure(comm)
    case "half-reducer": checks = try runHalfReducer(comm)
    case "stall": checks = try runStall(comm)
    case "late": checks = try runLate(comm, timeout: timeout ?? 0)
    default:
        print("collectives-mpi-probe: unknown mode '\(mode)' (expected check, mismatch, fail, half-reducer, stall or late)")
        exit(2)
    }
    if checks.failures.isEmpty {
        print("rank \(comm.rank) of \(comm.size): \(mode) ok (\(checks.passed) checks)")
        try MPICommunicator.finalize()
        exit(0)
    }
    for failure in checks.failures { print("rank \(comm.rank) of \(comm.size): FAILED \(failure)") }
    exit(1)
} catch {
    print("collectives-mpi-probe \(mode): \(error)")
    exit(1)
}
