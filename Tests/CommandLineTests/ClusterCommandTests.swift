import EmulatedCluster
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import Training

/// `powersgd cluster` end to end, as root: a real MPI job on two emulated hosts with shaped
/// links, the kernel's bytes against the ledger, teardown on success, on a killed rank and on
/// SIGTERM, `--cleanup`, and bad input. Without root (no CAP_NET_ADMIN) the job tests are
/// skipped with the reason; in CI (root) they run.
@Suite(.serialized) struct ClusterCommandTests {
    static let isRoot: Bool = {
        let root = geteuid() == 0
        if !root {
            print("ClusterCommandTests: SKIPPING the emulated-cluster tests: they need root (CAP_NET_ADMIN) to create "
                  + "network namespaces; this runs as uid \(geteuid())")
        }
        return root
    }()

    /// Bytes per host the kernel may count beyond 1.10 × the ledger: mpirun's launch of the remote
    /// daemons, MPI's connection handshakes, the daemons' forwarding of output and their shutdown,
    /// and the per-call signature checks (docs/cluster.md: at most 14 kB per host measured at 2
    /// hosts, 20 kB at 4).
    static let startUpAllowanceBytesPerHost = 32 * 1024

    static let quickTraining = ["train", "--model", "mlp", "--dataset", "fashion-mnist", "--batch-size", "16"]

    @Test(.enabled(if: isRoot, "needs root (CAP_NET_ADMIN) for network namespaces"),
          arguments: ["sgd", "powersgd:rank=2"])
    func trainsOnTwoHostsWithKernelBytesWithinTheBoundAndLeavesNothingBehind(reducer: String) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("run.jsonl"), report = directory.appendingPathComponent("out.json")
        let (outcome, pid) = try ClusterProcess.run(["cluster", "--hosts", "2", "--link", "100mbit", "--json", report.path, "--"]
                                                    + Self.quickTraining + ["--steps", "12", "--reducer", reducer, "--log-file", log.path],
                                                    timeout: 120)
        #expect(outcome.status == 0, "\(outcome.all)")
        let result = try JSONDecoder().decode(ClusterReport.self, from: Data(contentsOf: report))
        #expect(result.hosts == 2 && result.perHost.count == 2 && result.exitStatus == 0)
        #expect(result.linkBitsPerSecond == 100e6)
        for host in result.perHost {
            let sent = try #require(host.ledgerBytesSent), received = try #require(host.ledgerBytesReceived)
            #expect(sent > 0 && received > 0, "the ranks exchanged gradients: \(host)")
            for (kernel, ledger) in [(host.kernelBytesSent, sent), (host.kernelBytesReceived, received)] {
                #expect(kernel >= ledger, "the kernel saw at least the ledger's bytes: \(host)")
                #expect(Double(kernel) <= 1.10 * Double(ledger) + Double(2 * Self.startUpAllowanceBytesPerHost),
                        "kernel ≤ 1.10 × ledger + allowance: \(host)")
            }
            #expect(host.achievedSendBitsPerSecond <= 100e6 * 1.02, "the shaper held the rate: \(host)")
        }
        // The log: 12 measured steps, projected on the emulated link for 2 workers, with the skew.
        let runs = try RunLog.read(log)
        let run = try #require(runs.first)
        #expect(run.steps.count == 12)
        #expect(run.settings.projection.workers == 2)
        #expect(run.settings.projection.network == result.projectedNetwork)
        #expect(run.steps.allSatisfy { $0.communicationSeconds > 0 && $0.projectedSeconds > $0.localSeconds })
        #expect(run.steps.allSatisfy { ($0.skewSeconds ?? -1) >= 0 }, "every step records the ranks' skew")
        try expectNothingLeft(pid: pid, marker: directory.path)
    }

    @Test(.enabled(if: isRoot, "needs root (CAP_NET_ADMIN) for network namespaces"))
    func aKilledRankEndsTheJobNonZeroWithinSecondsAndTearsDown() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("run.jsonl")
        let job = try ClusterProcess(["cluster", "--hosts", "2", "--link", "100mbit", "--time-limit", "120", "--"]
                                     + Self.quickTraining + ["--steps", "5000", "--reducer", "sgd", "--log-file", log.path])
        defer { job.kill() }
        try job.waitForSteps(in: log, count: 2, timeout: 90)
        let found = try job.rankProcess(host: 1)
        let rank = try #require(found, "rank 1 runs in its host's namespace")
        Glibc.kill(rank, SIGKILL)
        let killed = Date()
        let outcome = try job.wait(timeout: 30)
        let seconds = Date().timeIntervalSince(killed)
        #expect(outcome.status != 0, "\(outcome.all)")
        #expect(seconds < 10, "the job ended \(seconds) s after its rank was killed")
        try expectNothingLeft(pid: job.pid, marker: directory.path)
    }

    @Test(.enabled(if: isRoot, "needs root (CAP_NET_ADMIN) for network namespaces"))
    func sigtermEndsTheJobAndTearsDown() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("run.jsonl")
        let job = try ClusterProcess(["cluster", "--hosts", "2", "--link", "100mbit", "--time-limit", "120", "--"]
                                     + Self.quickTraining + ["--steps", "5000", "--reducer", "sgd", "--log-file", log.path])
        defer { job.kill() }
        try job.waitForSteps(in: log, count: 2, timeout: 90)
        Glibc.kill(job.pid, SIGTERM)
        let outcome = try job.wait(timeout: 30)
        #expect(outcome.status != 0, "\(outcome.all)")
        #expect(outcome.all.contains("interrupted by signal \(SIGTERM)"), "\(outcome.all)")
        try expectNothingLeft(pid: job.pid, marker: directory.path)
    }

    @Test(.enabled(if: isRoot, "needs root (CAP_NET_ADMIN) for network namespaces"))
    func cleanupRemovesWhatAKilledRunLeftAndNothingElse() throws {
        // A PID no process has: the "killed run" whose namespaces are left over.
        var dead: pid_t = 4_000_000
        while Glibc.kill(dead, 0) == 0 || errno != ESRCH { dead -= 1 }
        let leftover = EmulatedCluster.namePrefix + "\(dead)-sw", other = "psgdtest-\(getpid())-keep"
        for name in [leftover, other] { _ = try ClusterProcess.tool("ip", ["netns", "add", name]) }
        defer { _ = try? ClusterProcess.tool("ip", ["netns", "del", other]); _ = try? ClusterProcess.tool("ip", ["netns", "del", leftover]) }
        let outcome = try CommandRunner.run(["cluster", "--cleanup"], timeout: 60)
        #expect(outcome.status == 0, "\(outcome.all)")
        #expect(outcome.standardOutput.contains(leftover), "\(outcome.all)")
        let namespaces = try ClusterProcess.namespaces()
        #expect(!namespaces.contains(leftover), "\(namespaces)")
        #expect(namespaces.contains(other), "names without our prefix are left alone: \(namespaces)")
    }

    /// A job whose ranks never start (here: the rank's program is a script, so no process in a
    /// host's namespace ever runs it, as when a remote daemon dies before starting its rank) is
    /// ended by the launch timeout, not left to `--time-limit`, and the cluster is removed.
    @Test(.enabled(if: isRoot, "needs root (CAP_NET_ADMIN) for network namespaces"))
    func aLaunchThatStartsNoRankIsEndedByTheLaunchTimeout() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = directory.appendingPathComponent("never-the-rank")
        try "#!/bin/sh\nexec sleep 40\n".write(to: script, atomically: true, encoding: .utf8)
        chmod(script.path, 0o755)
        let cluster = try EmulatedCluster(hosts: 2, rate: LinkRate(parsing: "100mbit"))
        defer { cluster.teardown() }
        let outcome = try ClusterJob(cluster: cluster, command: [script.path], timeLimit: 120, launchTimeout: 3).run()
        #expect(outcome.hostsNotLaunched == [0, 1])
        #expect(!outcome.timedOut && outcome.status != 0)
        #expect(outcome.wallSeconds < 30, "ended at the launch timeout, not the time limit: \(outcome.wallSeconds) s")
        let prefix = cluster.prefix
        cluster.teardown()
        #expect(try ClusterProcess.namespaces().filter { $0.hasPrefix(prefix) }.isEmpty)
        #expect(ClusterProcess.processes(containing: script.path).isEmpty)
    }

    /// A job whose ranks run outlives the launch timeout and ends with its own status.
    @Test(.enabled(if: isRoot, "needs root (CAP_NET_ADMIN) for network namespaces"))
    func aLaunchedJobOutlivesTheLaunchTimeout() throws {
        let cluster = try EmulatedCluster(hosts: 2, rate: LinkRate(parsing: "100mbit"))
        defer { cluster.teardown() }
        let outcome = try ClusterJob(cluster: cluster, command: ["/bin/sleep", "10"], timeLimit: 120, launchTimeout: 8).run()
        #expect(outcome.hostsNotLaunched.isEmpty && !outcome.timedOut)
        #expect(outcome.status == 0)
        #expect(outcome.wallSeconds >= 10)
    }

    static let badInputs: [(arguments: [String], message: String)] = [
        (["--hosts", "0", "--link", "20mbit", "--", "train"], "--hosts"),
        (["--hosts", "2", "--link", "fast", "--", "train"], "--link 'fast'"),
        (["--hosts", "2", "--link", "0mbit", "--", "train"], "--link '0mbit'"),
        (["--hosts", "2", "--link", "0", "--", "train"], "--link '0'"),
        (["--hosts", "2", "--link", "20mbit", "train", "--model", "mlp"], "missing '--'"),
        (["--hosts", "2", "--link", "20mbit"], "missing '--'"),
        (["--hosts", "2", "--link", "20mbit", "--", "simulate"], "train, compare or bench network"),
        (["--hosts", "2", "--link", "20mbit", "--", "train", "--network", "1gbit"], "--network"),
        (["--hosts", "2", "--link", "20mbit", "--", "train", "--backend", "threads"], "--backend threads"),
        (["--hosts", "2", "--link", "20mbit", "--delay", "soon", "--", "train"], "--delay 'soon'"),
        (["--hosts", "2", "--link", "20mbit", "--network", "/nonexistent/net.json", "--", "train"], "/nonexistent/net.json"),
        (["--hosts", "2", "--link", "20mbit", "--launch-timeout", "0", "--", "train"], "--launch-timeout"),
    ]

    @Test(arguments: badInputs)
    func badInputExitsTwoNamingIt(input: (arguments: [String], message: String)) throws {
        let outcome = try CommandRunner.run(["cluster"] + input.arguments, timeout: 30)
        #expect(outcome.status == 2, "\(outcome.all)")
        #expect(outcome.standardError.contains(input.message), "\(outcome.all)")
        try expectNothingLeft(pid: nil, marker: nil)
    }

    /// `--help` is help, although everything after the options is passed through to the subcommand.
    @Test func helpIsShownNotTakenForTheSubcommand() throws {
        let outcome = try CommandRunner.run(["cluster", "--help"], timeout: 30)
        #expect(outcome.status == 0, "\(outcome.all)")
        #expect(outcome.standardOutput.contains("--hosts") && outcome.standardOutput.contains("--link"), "\(outcome.all)")
    }

    /// Not root: exit 2 saying why and what to do (run as root here, the test drops to 'nobody').
    @Test(.enabled(if: isRoot && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"),
                   "needs root to drop to another user, and setpriv"))
    func withoutRootItExitsTwoSayingWhy() throws {
        let binary = try CommandRunner.powersgd().path
        let outcome = try ClusterProcess.tool("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", binary, "cluster",
                                                         "--hosts", "2", "--link", "20mbit", "--", "train", "--model", "mlp"])
        #expect(outcome.status == 2, "\(outcome.all)")
        #expect(outcome.standardError.contains("needs root (CAP_NET_ADMIN)"), "\(outcome.all)")
        #expect(outcome.standardError.contains("run it as root"), "\(outcome.all)")
    }

    /// A delay needs netem: honoured where the kernel has it, else exit 2 saying so (never ignored).
    @Test(.enabled(if: isRoot, "needs root (CAP_NET_ADMIN) for network namespaces"))
    func aDelayIsHonouredOrRefusedWithExitTwo() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (outcome, pid) = try ClusterProcess.run(["cluster", "--hosts", "2", "--link", "100mbit", "--delay", "1ms", "--"]
                                                    + Self.quickTraining + ["--steps", "2", "--reducer", "sgd"], timeout: 120)
        if outcome.status != 0 {
            #expect(outcome.status == 2, "\(outcome.all)")
            #expect(outcome.standardError.contains("--delay cannot be honoured") && outcome.standardError.contains("netem"),
                    "\(outcome.all)")
        }
        try expectNothingLeft(pid: pid, marker: directory.path)
    }

    /// No namespace of the invocation `pid` (all of ours when nil), no process of it.
    func expectNothingLeft(pid: pid_t?, marker: String?) throws {
        let prefix = EmulatedCluster.namePrefix + (pid.map { "\($0)-" } ?? "")
        let namespaces = try ClusterProcess.namespaces().filter { $0.hasPrefix(prefix) }
        if pid != nil { #expect(namespaces.isEmpty, "namespaces left behind: \(namespaces)") }
        if let marker {
            let processes = ClusterProcess.processes(containing: marker) + (pid == nil ? [] : ClusterProcess.processes(containing: prefix))
            #expect(processes.isEmpty, "processes left behind: \(processes)")
        }
    }
}

/// A `powersgd cluster` run in the background, for the tests that act on it while it runs.
final class ClusterProcess {
    let process = Process()
    let directory: URL
    var pid: pid_t { process.processIdentifier }

    init(_ arguments: [String]) throws {
        directory = try temporaryDirectory()
        process.executableURL = try CommandRunner.powersgd()
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "1"
        process.environment = environment
        for name in ["stdout", "stderr"] {
            FileManager.default.createFile(atPath: directory.appendingPathComponent(name).path, contents: nil)
        }
        process.standardOutput = try FileHandle(forWritingTo: directory.appendingPathComponent("stdout"))
        process.standardError = try FileHandle(forWritingTo: directory.appendingPathComponent("stderr"))
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    static func run(_ arguments: [String], timeout: Double) throws -> (CommandRunner.Outcome, pid_t) {
        let job = try ClusterProcess(arguments)
        defer { job.kill() }
        return (try job.wait(timeout: timeout), job.pid)
    }

    /// Waits for the end (SIGTERM after `timeout`, which the outcome reports as timed out).
    func wait(timeout: Double) throws -> CommandRunner.Outcome {
        let start = Date()
        var timedOut = false
        while process.isRunning {
            if Date().timeIntervalSince(start) > timeout, !timedOut {
                timedOut = true
                process.terminate()
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        process.waitUntilExit()
        func read(_ name: String) -> String {
            (try? String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)) ?? ""
        }
        return CommandRunner.Outcome(status: process.terminationStatus, standardOutput: read("stdout"),
                                     standardError: read("stderr"), timedOut: timedOut)
    }

    /// Ends the run if it still runs (a failed test must not leave it), giving it time to tear down.
    func kill() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(15)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
    }

    /// Waits until the run's log holds `count` step records.
    func waitForSteps(in log: URL, count: Int, timeout: Double) throws {
        let start = Date()
        while Date().timeIntervalSince(start) < timeout {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            if text.components(separatedBy: "\"record\":\"step\"").count - 1 >= count { return }
            guard process.isRunning else { throw RunnerError("the cluster run ended before \(count) steps: \(try wait(timeout: 1).all)") }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw RunnerError("no \(count) steps in \(log.path) after \(timeout) s")
    }

    /// The `powersgd` rank running in `host`'s namespace.
    func rankProcess(host: Int) throws -> pid_t? {
        let output = try ClusterProcess.tool("ip", ["netns", "pids", EmulatedCluster.namePrefix + "\(pid)-h\(host)"]).standardOutput
        return output.split(whereSeparator: \.isNewline).compactMap { pid_t($0) }.first { candidate in
            let comm = (try? String(contentsOfFile: "/proc/\(candidate)/comm", encoding: .utf8)) ?? ""
            return comm.trimmingCharacters(in: .whitespacesAndNewlines) == "powersgd"
        }
    }

    static func tool(_ name: String, _ arguments: [String]) throws -> CommandRunner.Outcome {
        let candidates = ["/usr/sbin/\(name)", "/sbin/\(name)", "/usr/bin/\(name)", "/bin/\(name)"]
        guard let path = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw RunnerError("\(name) not found")
        }
        let job = Process()
        job.executableURL = URL(fileURLWithPath: path)
        job.arguments = arguments
        let out = Pipe(), err = Pipe()
        job.standardOutput = out
        job.standardError = err
        try job.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let error = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        job.waitUntilExit()
        return CommandRunner.Outcome(status: job.terminationStatus, standardOutput: output, standardError: error, timedOut: false)
    }

    static func namespaces() throws -> [String] {
        try tool("ip", ["netns", "list"]).standardOutput.split(whereSeparator: \.isNewline)
            .map { String($0.split(separator: " ").first ?? "") }
    }

    /// PIDs (other than this test's) whose command line contains `text`.
    static func processes(containing text: String) -> [String] {
        let me = getpid()
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> String? in
            guard let pid = pid_t(entry), pid != me,
                  let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return nil }
            let line = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            return line.contains(text) ? "\(pid): \(line)" : nil
        }
    }
}
