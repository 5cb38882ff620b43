import ArgumentParser
import Collectives
import CollectivesMPI
import Foundation
import LinearAlgebra

/// `powersgd bench collectives`: all-reduce of ResNet-18's gradient (11,173,962 floats, 44.7 MB)
/// and all-gather of 1 MB per rank, at W = 2 and 4, with `InProcessGroup` and with
/// `MPICommunicator`. The MPI part re-launches this binary under `mpirun` with the
/// hidden `--mpi-worker` flag; rank 0 prints its measurements as one JSON line.
///
/// Each figure is the median over `--repeats` timed operations, each started right after a
/// barrier and timed on rank 0. Algorithm bandwidth = payload bytes per rank / time (the
/// nccl-tests "algbw"). Limits measured in the same run: one thread's memory copy bandwidth
/// (bytes read + written per second, `Benchmark.copyBandwidth`) and, for MPI, a raw
/// `MPI_Allreduce` of the same buffer through the C shim, timed with `MPI_Wtime`.
struct BenchCollectives: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "collectives",
        abstract: "All-reduce of a 44.7 MB gradient and all-gather of 1 MB per rank, in-process and over MPI.")

    @Flag(help: "Print JSON (the default output is also JSON; the flag is accepted for symmetry).")
    var json = false

    @Option(help: "Timed operations per measurement (the median is reported).")
    var repeats = 9

    @Option(help: "Worker counts to measure, comma-separated.")
    var workers = "2,4"

    @Flag(help: "Skip the MPI measurements (no mpirun needed).")
    var skipMPI = false

    @Option(help: "The mpirun to launch the MPI part with.")
    var mpirun = "mpirun"

    @Flag(help: .hidden) var mpiWorker = false

    static let gradientFloats = 11_173_962
    static let gatherBytes = 1_000_000
    static let workerMarker = "BENCH-COLLECTIVES-MPI "

    struct Measurement: Codable {
        var backend: String
        var collective: String
        var workers: Int
        var payloadBytesPerRank: Int
        var msPerOp: Double
        var algorithmGBs: Double
        var ratioToMemoryCopy: Double
        /// MPI only: a plain MPI_Allreduce of the same buffer, and our time over it.
        var rawMPIAllreduceMs: Double?
        var ratioToRawMPI: Double?
        var goal: String?
        var meetsGoal: Bool?
        /// In-process all-reduce only: the memory traffic of one worker (its chunk read from and
        /// written to all W buffers: 2 · W · P/W = 2P bytes), the time that traffic takes at the
        /// copy bandwidth of this run (workers run in parallel), and the measured time over it.
        var memoryTrafficBytesPerWorker: Int?
        var memoryBoundMs: Double?
        var ratioToMemoryBound: Double?
        /// The same traffic of all W workers at once over the copy bandwidth of two threads copying
        /// at once (the machine's cores share the memory bus): the bound when bandwidth, not the
        /// thread count, is the limit.
        var sharedBusBoundMs: Double?
        var ratioToSharedBusBound: Double?
    }

    struct Report: Codable {
        /// The 1-minute load average at the end of the run (/proc/loadavg): above 2 on this
        /// 2-core machine, worker threads and ranks wait for a core and times grow accordingly.
        var loadAverage1m: Double?
        var memoryCopyGBs: Double
        /// Bytes read + written per second by two threads each copying its own 32 MB buffer at once.
        var memoryCopyGBsTwoThreads: Double
        var cores: Int
        var gradientFloats: Int
        var allGatherBytesPerRank: Int
        var repeats: Int
        var measurements: [Measurement]
        var notes: String
    }

    func workerCounts() throws -> [Int] { try integers(workers, "--workers", 1...Int(Int32.max)) }

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1 (got \(repeats))") }
        _ = try workerCounts()
    }

    func run() throws {
        if mpiWorker { return try runMPIWorker() }
        let copy = Benchmark.copyBandwidth()
        let copyTwo = Benchmark.copyBandwidth(threads: 2, bytesPerThread: 32 << 20)
        var measurements: [Measurement] = []
        for w in try workerCounts() {
            let times = try Self.measureInProcess(workers: w, repeats: repeats)
            var reduce = Self.measurement(backend: "in-process", collective: "allReduce", workers: w,
                                          seconds: times.allReduce, copy: copy)
            if let traffic = reduce.memoryTrafficBytesPerWorker, traffic > 0 {
                // Workers beyond the core count wait for a core: the per-worker bound scales by W/cores.
                let cores = ProcessInfo.processInfo.activeProcessorCount
                let bound = Double(traffic) / (copy * 1e9) * Double(max(w, cores)) / Double(cores)
                reduce.memoryBoundMs = bound * 1e3
                reduce.ratioToMemoryBound = times.allReduce / bound
                let shared = Double(w * traffic) / (copyTwo * 1e9)
                reduce.sharedBusBoundMs = shared * 1e3
                reduce.ratioToSharedBusBound = times.allReduce / shared
            }
            measurements.append(reduce)
            if let half = times.allReduceFloat16 {
                measurements.append(Self.measurement(backend: "in-process", collective: "allReduce.float16", workers: w,
                                                     seconds: half, copy: copy))
            }
            measurements.append(Self.measurement(backend: "in-process", collective: "allGather", workers: w,
                                                 seconds: times.allGather, copy: copy))
        }
        if !skipMPI {
            for w in try workerCounts() where w > 1 {
                let times = try launchMPI(workers: w)
                var reduce = Self.measurement(backend: "mpi", collective: "allReduce", workers: w,
                                              seconds: times.allReduce, copy: copy)
                reduce.rawMPIAllreduceMs = times.rawAllReduce * 1e3
                reduce.ratioToRawMPI = times.allReduce / times.rawAllReduce
                reduce.goal = "<= 1.2x raw MPI_Allreduce"
                reduce.meetsGoal = times.allReduce <= 1.2 * times.rawAllReduce
                measurements.append(reduce)
                measurements.append(Self.measurement(backend: "mpi", collective: "allGather", workers: w,
                                                     seconds: times.allGather, copy: copy))
            }
        }
        let report = Report(loadAverage1m: MachineDescription.loadAverage(), memoryCopyGBs: copy, memoryCopyGBsTwoThreads: copyTwo,
                            cores: ProcessInfo.processInfo.activeProcessorCount, gradientFloats: Self.gradientFloats,
                            allGatherBytesPerRank: Self.gatherBytes, repeats: repeats, measurements: measurements,
                            notes: "median ms per op timed on rank 0 after a barrier; algorithmGBs = payload bytes "
                                + "per rank / time; memoryCopyGBs = one thread's bytes read + written per second; "
                                + "memoryBoundMs = one worker's memory traffic (its chunk read from and written to every rank's buffer, 2 x payload) / memoryCopyGBs "
                                + "(x W/cores when W > cores); sharedBusBoundMs = all workers' traffic / memoryCopyGBsTwoThreads; "
                                + "MPI runs under mpirun --oversubscribe --bind-to none with validation on; "
                                + "rawMPIAllreduceMs = MPI_Wtime around the shim's plain MPI_Allreduce of the same buffer")
        try BenchmarkReport.print(report)
    }

    static func measurement(backend: String, collective: String, workers: Int, seconds: Double,
                            copy: Double) -> Measurement {
        let payload = collective == "allReduce" ? 4 * gradientFloats
            : collective == "allReduce.float16" ? 2 * gradientFloats : gatherBytes
        let gbs = Double(payload) / seconds / 1e9
        var m = Measurement(backend: backend, collective: collective, workers: workers, payloadBytesPerRank: payload,
                            msPerOp: seconds * 1e3, algorithmGBs: gbs, ratioToMemoryCopy: gbs / copy)
        if backend == "in-process" && collective == "allReduce" {
            let traffic = workers > 1 ? 2 * payload : 0
            m.memoryTrafficBytesPerWorker = traffic
            m.memoryBoundMs = Double(traffic) / (copy * 1e9) * 1e3
            m.ratioToMemoryBound = traffic > 0 ? seconds / (Double(traffic) / (copy * 1e9)) : nil
        }
        if backend == "in-process" && collective == "allReduce" && workers == 2 {
            m.goal = "<= 10 ms"
            m.meetsGoal = seconds <= 0.010
        }
        return m
    }

    struct Times: Codable {
        var allReduce: Double; var allGather: Double; var rawAllReduce: Double
        /// In-process only: the fp16 all-reduce (sum) of the same element count, 2 bytes each.
        var allReduceFloat16: Double?
    }

    /// Median seconds of `body` over `repeats` runs after one warm-up, each run started right
    /// after a barrier, as seen by rank 0 (`now` is the backend's clock).
    static func medianAfterBarrier(_ comm: any Communicator, repeats: Int, now: () -> Double,
                                   _ body: () throws -> Void) throws -> Double {
        try comm.barrier()
        try body()
        var times: [Double] = []
        for _ in 0 ..< repeats {
            try comm.barrier()
            let start = now()
            try body()
            times.append(now() - start)
        }
        times.sort()
        return times[times.count / 2]
    }

    static func monotonicSeconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

    static func measureInProcess(workers: Int, repeats: Int) throws -> Times {
        let results = try InProcessGroup.run(workers: workers) { comm -> Times in
            // Values stay finite: 10 sums of 4 ranks multiply 1e-3 by at most 4^10 ≈ 1e6.
            var gradient = [Float](repeating: 1e-3, count: gradientFloats)
            let reduce = try gradient.withUnsafeMutableBufferPointer { g in
                try medianAfterBarrier(comm, repeats: repeats, now: monotonicSeconds) {
                    try comm.allReduce(g, operation: .sum)
                }
            }
            let message = [UInt8](repeating: UInt8(comm.rank), count: gatherBytes)
            let gather = try medianAfterBarrier(comm, repeats: repeats, now: monotonicSeconds) {
                _ = try comm.allGather(message)
            }
            // fp16 1e-3 (0x1419): 10 sums of 4 ranks stay far below fp16's 65504.
            var half = [UInt16](repeating: 0x1419, count: gradientFloats)
            let reduceHalf = try half.withUnsafeMutableBufferPointer { h in
                try medianAfterBarrier(comm, repeats: repeats, now: monotonicSeconds) {
                    try comm.allReduce(h, format: .float16, operation: .sum)
                }
            }
            return Times(allReduce: reduce, allGather: gather, rawAllReduce: .nan, allReduceFloat16: reduceHalf)
        }
        return results[0]
    }

    /// Runs inside `mpirun`: measures the raw shim all-reduce, ours, and the all-gather, in that
    /// order interleaved per repetition so that both all-reduces see the same machine state.
    func runMPIWorker() throws {
        let comm = try MPICommunicator()
        var gradient = [Float](repeating: 1e-3, count: Self.gradientFloats)
        var raw: [Double] = [], ours: [Double] = []
        try gradient.withUnsafeMutableBufferPointer { g in
            try comm.rawAllReduceSum(g)
            try comm.allReduce(g, operation: .sum)
            for _ in 0 ..< repeats {
                try comm.barrier()
                var start = MPICommunicator.wallTime()
                try comm.rawAllReduceSum(g)
                raw.append(MPICommunicator.wallTime() - start)
                try comm.barrier()
                start = MPICommunicator.wallTime()
                try comm.allReduce(g, operation: .sum)
                ours.append(MPICommunicator.wallTime() - start)
            }
        }
        let message = [UInt8](repeating: UInt8(truncatingIfNeeded: comm.rank), count: Self.gatherBytes)
        let gather = try Self.medianAfterBarrier(comm, repeats: repeats, now: MPICommunicator.wallTime) {
            _ = try comm.allGather(message)
        }
        raw.sort(); ours.sort()
        let times = Times(allReduce: ours[ours.count / 2], allGather: gather, rawAllReduce: raw[raw.count / 2])
        if comm.rank == 0 {
            print(Self.workerMarker + String(decoding: try JSONEncoder().encode(times), as: UTF8.self))
        }
        try MPICommunicator.finalize()
    }

    /// `mpirun -np W <this binary> bench collectives --mpi-worker`, with the launch flags of
    /// docs/collectives.md; returns rank 0's measurements.
    func launchMPI(workers w: Int) throws -> Times {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        var arguments = [mpirun, "-np", "\(w)", "--oversubscribe", "--bind-to", "none"]
        if getuid() == 0 { arguments.append("--allow-run-as-root") }
        arguments += [me, "bench", "collectives", "--mpi-worker", "--repeats", "\(repeats)"]
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "1"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch {
            throw ValidationError("could not start \(mpirun) (\(error)); install OpenMPI or pass --skip-mpi")
        }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let line = output.split(separator: "\n").first(where: { $0.hasPrefix(Self.workerMarker) }) else {
            throw CollectiveError.transport("the MPI benchmark with \(w) ranks failed (exit status "
                                            + "\(process.terminationStatus)):\n\(output)")
        }
        return try JSONDecoder().decode(Times.self, from: Data(line.dropFirst(Self.workerMarker.count).utf8))
    }
}
