import Foundation
import Testing
import TestSupport
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
        try ChildProcess.built("collectives-mpi-probe", environmentOverride: "COLLECTIVES_MPI_PROBE")
    }

    /// `mpirun -np N probe mode arguments...` with the flags docs/collectives.md documents, or the
    /// probe alone when `ranks` is nil; killed after `timeout` seconds. `whileRunning` sees the
    /// output so far, every 20 ms until the job ends.
    static func launch(ranks: Int?, mode: String, arguments extra: [String] = [], timeout: Double = 120,
                       whileRunning: ((String) -> Void)? = nil) throws -> Outcome {
        let probe = try probeURL()
        let (executable, arguments) = try ranks.map { (try ChildProcess.mpirun(), ChildProcess.mpirunFlags(ranks: $0) + [probe.path, mode] + extra) }
            ?? (probe, [mode] + extra)
        let outcome = try ChildProcess.run(executable, arguments, timeout: timeout, mergingStandardError: true) { output in
            whileRunning?(output)
            return .keepWaiting
        }
        return Outcome(status: outcome.status, output: outcome.standardOutput, seconds: outcome.seconds, timedOut: outcome.timedOut)
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

    /// The pid rank `rank` printed in the probe's `stall` mode, if it has yet.
    static func readyPID(rank: Int, ranks: Int, in output: String) -> pid_t? {
        let prefix = "rank \(rank) of \(ranks): pid "
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix(prefix) && $0.hasSuffix(" ready") }) else { return nil }
        return pid_t(line.dropFirst(prefix.count).dropLast(" ready".count))
    }

    /// Resumes and kills `pid` if it is still one of our probe processes (not a reused pid).
    static func endProbe(_ pid: pid_t) {
        guard let command = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8),
              command.contains("collectives-mpi-probe") else { return }
        kill(pid, SIGCONT)
        kill(pid, SIGKILL)
    }

    /// A rank stopped with SIGSTOP while the other all-reduces in a loop: with a 3 s collective
    /// timeout the job must end non-zero within a bounded time, and stderr must name the stopped
    /// rank and the collective the other was waiting in. (Without a timeout the waiting rank spins
    /// inside MPI forever: the same run with timeout 0 is killed by this test's 60 s limit.)
    @Test func aStoppedRankEndsTheJobAfterTheCollectiveTimeoutNamingIt() throws {
        var stopped: pid_t?
        defer { if let stopped { Self.endProbe(stopped) } }
        let outcome = try Self.launch(ranks: 2, mode: "stall", arguments: ["3"], timeout: 60) { output in
            guard stopped == nil, let pid = Self.readyPID(rank: 1, ranks: 2, in: output) else { return }
            kill(pid, SIGSTOP)
            stopped = pid
        }
        #expect(stopped != nil, "rank 1 never printed its pid: \(outcome.output)")
        #expect(!outcome.timedOut, "the job did not end: \(outcome.output)")
        #expect(outcome.status != 0, "\(outcome.output)")
        #expect(outcome.output.contains("collective timeout on rank 0: collective #"), "\(outcome.output)")
        #expect(outcome.output.contains("allReduce.sum(1000 elements) (step "), "\(outcome.output)")
        #expect(outcome.output.contains("did not complete within 3 s; rank 1 did not answer within 2 s "
                                        + "(stopped, hung or unreachable); aborting the job"), "\(outcome.output)")
        // Timeout 3 s + 2 s of questions + mpirun's teardown.
        #expect(outcome.seconds < 30, "took \(outcome.seconds) s")
    }

    /// A rank that is alive but late (sleeping outside any collective) answers the waiting rank's
    /// question: the message says it is running and has not entered the collective.
    @Test func aLateButLiveRankIsNamedAsNotHavingEnteredTheCollective() throws {
        let outcome = try Self.launch(ranks: 3, mode: "late", arguments: ["2"], timeout: 60)
        #expect(!outcome.timedOut, "the job did not end: \(outcome.output)")
        #expect(outcome.status != 0, "\(outcome.output)")
        let waiting = ["rank 0", "rank 1"].filter { outcome.output.contains("collective timeout on \($0): collective #2 allGather (step 1) did not complete within 2 s") }
        #expect(!waiting.isEmpty, "\(outcome.output)")
        #expect(outcome.output.contains("rank 2 did not arrive: it is running but has not entered it (its collective #1 ended "),
                "\(outcome.output)")
        #expect(!outcome.output.contains("rank 0 did not arrive") && !outcome.output.contains("rank 1 did not arrive"),
                "\(outcome.output)")
        #expect(outcome.seconds < 30, "took \(outcome.seconds) s")
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
