import Foundation

/// A child process a test runs to its end: output into files (not pipes, so a chatty child never
/// blocks on a full pipe while the test waits), one BLAS thread, SIGTERM after a timeout. The
/// one launch-and-wait loop of the command-line and MPI tests.
public enum ChildProcess {
    public struct Outcome: Sendable {
        public var status: Int32
        public var standardOutput: String
        /// Empty when standard error was merged into standard output.
        public var standardError: String
        public var timedOut: Bool
        public var seconds: Double
        public var all: String { standardOutput + standardError }

        public init(status: Int32, standardOutput: String, standardError: String, timedOut: Bool, seconds: Double = 0) {
            self.status = status
            self.standardOutput = standardOutput
            self.standardError = standardError
            self.timedOut = timedOut
            self.seconds = seconds
        }
    }

    /// What `watch` asks for after seeing the output so far.
    public enum Action { case keepWaiting, interrupt }

    /// An executable built next to the test binary (or at `$environmentOverride`).
    public static func built(_ name: String, environmentOverride: String) throws -> URL {
        if let path = ProcessInfo.processInfo.environment[environmentOverride] { return URL(fileURLWithPath: path) }
        var directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        // macOS bundles: .../PowerSGDPackageTests.xctest/Contents/MacOS/PowerSGDPackageTests
        while directory.path.contains(".xctest") { directory.deleteLastPathComponent() }
        let url = directory.appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw ChildProcessError("\(name) not found at \(url.path); build it with `swift build` (or set \(environmentOverride))")
        }
        return url
    }

    /// `mpirun` from `PATH`.
    public static func mpirun() throws -> URL {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent("mpirun")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw ChildProcessError("mpirun not found on PATH: install OpenMPI (scripts/bootstrap.sh installs openmpi-bin)")
    }

    /// The `mpirun` flags docs/collectives.md documents, for `ranks` processes.
    public static func mpirunFlags(ranks: Int) -> [String] {
        var flags = ["-np", "\(ranks)", "--oversubscribe", "--bind-to", "none"]
        if getuid() == 0 { flags.insert("--allow-run-as-root", at: 0) }
        return flags
    }

    /// Runs `executable arguments...` to its end, or SIGTERM after `timeout` seconds (reported as
    /// `timedOut`). Every 20 ms `watch` sees the standard output so far (with standard error
    /// when `mergingStandardError`) and may ask for a SIGINT (what Ctrl-C sends), sent once.
    public static func run(_ executable: URL, _ arguments: [String], timeout: Double, mergingStandardError: Bool = false,
                           watch: ((String) -> Action)? = nil) throws -> Outcome {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "1"
        process.environment = environment
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("powersgd-child-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("stdout"), err = directory.appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        let outHandle = try FileHandle(forWritingTo: out)
        process.standardOutput = outHandle
        process.standardError = mergingStandardError ? outHandle : try FileHandle(forWritingTo: err)
        func read(_ url: URL) -> String { (try? String(contentsOf: url, encoding: .utf8)) ?? "" }
        let start = Date()
        try process.run()
        var timedOut = false, interrupted = false
        while process.isRunning {
            if let watch, !interrupted, watch(read(out)) == .interrupt {
                interrupted = true
                process.interrupt()
            }
            if Date().timeIntervalSince(start) > timeout {
                timedOut = true
                process.terminate()
                break
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus, standardOutput: read(out), standardError: mergingStandardError ? "" : read(err),
                       timedOut: timedOut, seconds: Date().timeIntervalSince(start))
    }
}

public struct ChildProcessError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
