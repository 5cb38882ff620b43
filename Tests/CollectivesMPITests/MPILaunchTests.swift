import Foundation
import Testing
@testable import CollectivesMPI

/// Runs `collectives-mpi-probe` (built next to this test binary) under `mpirun`, and without a
/// launcher as a 1-rank job. Missing `mpirun` or a missing probe is a test failure, not a skip:
/// CI installs OpenMPI (scripts/bootstrap.sh).
@Suite(.serialized) struct MPILaunchTests {
    struct Outcome {
        var status: Int32
        var output: String
        var seconds: Double
        var timedOut: Bool
    }

    static func probeURL() throws -> URL {
        if let path = ProcessInfo.processInfo.environment["COLLECTIVES_MPI_PROBE"] {
            return URL(fileURLWithPath: path)
        }
        let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var directory = binary.deletingLastPathComponent()
        // macOS bundles: .../PowerSGDPackageTests.xctest/Contents/MacOS/PowerSGDPackageTests
        while directory.path.contains(".xctest") { directory.deleteLastPathComponent() }
        let probe = directory.appendingPathComponent("collectives-mpi-probe")
        guard FileManager.default.isExecutableFile(atPath: probe.path) else {
            throw ProbeError("collectives-mpi-probe not found at \(probe.path); build it with `swift build` "
                             + "(or set COLLECTIVES_MPI_PROBE)")
        }
        return probe
    }

    static func mpirunURL() throws -> URL {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent("mpirun")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw ProbeError("mpirun not found on PATH: install OpenMPI (scripts/bootstrap.sh installs openmpi-bin)")
    }

    /// `mpirun -np N probe mode` with the flags docs/collectives.md documents, or the probe alone
    /// when `ranks` is nil; killed after `timeout` seconds.
    static func launch(ranks: Int?, mode: String, timeout: Double = 120) throws -> Outcome {
        let probe = try probeURL()
        let process = Process()
        if let ranks {
            process.executableURL = try mpirunURL()
            var arguments = ["-np", "\(ranks)", "--oversubscribe", "--bind-to", "none"]
            if getuid() == 0 { arguments.insert("--allow-run-as-root", at: 0) }
            process.arguments = arguments + [probe.path, mode]
        } else {
            process.executableURL = probe
            process.arguments = [mode]
        }
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "1"
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        let collected = OutputBuffer()
        output.fileHandleForReading.readabilityHandler = { handle in collected.append(handle.availableData) }
        let start = Date()
        try process.run()
        var timedOut = false
        while process.isRunning {
            if Date().timeIntervalSince(start) > timeout {
                timedOut = true
                process.terminate()
                process.waitUntilExit()
                break
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        process.waitUntilExit()
        output.fileHandleForReading.readabilityHandler = nil
        collected.append(output.fileHandleForReading.readDataToEndOfFile())
        return Outcome(status: process.terminationStatus, output: collected.text,
                       seconds: Date().timeIntervalSince(start), timedOut: timedOut)
    }

    @Test func probeWithoutLauncherIsAOneRankJob() throws {
        let outcome = try Self.launch(ranks: nil, mode: "check")
        #expect(outcome.status == 0, "\(outcome.output)")
        #expect(outcome.output.contains("rank 0 of 1: check ok"), "\(outcome.output)")
    }

    @Test(arguments: [2, 3, 4, 8])
    func everyCollectiveMatchesTheNaiveReference(ranks: Int) throws {
        let outcome = try Self.launch(ranks: ranks, mode: "check")
        #expect(!outcome.timedOut)
        #expect(outcome.status == 0, "\(outcome.output)")
        for rank in 0 ..< ranks {
            #expect(outcome.output.contains("rank \(rank) of \(ranks): check ok"), "\(outcome.output)")
        }
    }

    @Test(arguments: [2, 3])
    func mismatchGivesTheSameErrorOnEveryRank(ranks: Int) throws {
        let outcome = try Self.launch(ranks: ranks, mode: "mismatch")
        #expect(outcome.status == 0, "\(outcome.output)")
        let expected = "collective mismatch: rank \(ranks - 1) called allReduce.sum(99 elements) "
            + "while rank 0 called allReduce.sum(100 elements)"
        for rank in 0 ..< ranks {
            #expect(outcome.output.contains("rank \(rank): \(expected)"), "\(outcome.output)")
            #expect(outcome.output.contains("rank \(rank) of \(ranks): mismatch ok"), "\(outcome.output)")
        }
    }

    /// The fp16 / bf16 reducers (AllReduceReducer over the half-width all-reduce) on 2 ranks: the
    /// average equals the documented MPI result bit for bit on both ranks, with 2-byte ring counts.
    @Test func halfPrecisionReducersAllReduceOverMPI() throws {
        let outcome = try Self.launch(ranks: 2, mode: "half-reducer")
        #expect(!outcome.timedOut)
        #expect(outcome.status == 0, "\(outcome.output)")
        for rank in 0 ..< 2 {
            #expect(outcome.output.contains("rank \(rank) of 2: half-reducer ok"), "\(outcome.output)")
        }
    }

    /// The last rank exits with status 3 while the others wait in an all-reduce: mpirun must end
    /// the job with a non-zero status and say which process failed, well before the timeout.
    @Test func aRankThatExitsNonZeroEndsTheJobWithAMessage() throws {
        let outcome = try Self.launch(ranks: 3, mode: "fail", timeout: 60)
        #expect(!outcome.timedOut, "mpirun hung: \(outcome.output)")
        #expect(outcome.status != 0, "\(outcome.output)")
        #expect(outcome.output.contains("rank 2: exiting with status 3 on purpose"), "\(outcome.output)")
        #expect(outcome.output.contains("exit") || outcome.output.contains("exited"), "\(outcome.output)")
        #expect(outcome.seconds < 30)
    }

    @Test func signaturesRoundTripAndDescribeTheCall() {
        let call = CallSignature(operation: .allReduce(.mean), count: 12, root: -1)
        #expect(CallSignature(fields: call.fields) == call)
        #expect(call.summary == "allReduce.mean(12 elements)")
        // All-gather lengths may differ across ranks: the count is not compared.
        #expect(CallSignature(operation: .allGather, count: 3, root: -1)
                == CallSignature(operation: .allGather, count: 0, root: -1))
        #expect(CallSignature(operation: .broadcastFloats, count: 3, root: 1)
                != CallSignature(operation: .broadcastFloats, count: 3, root: 0))
    }
}

struct ProbeError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

final class OutputBuffer: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func append(_ chunk: Data) { lock.lock(); data.append(chunk); lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }
}
