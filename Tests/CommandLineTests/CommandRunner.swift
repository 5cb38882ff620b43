import Foundation

/// Runs the `powersgd` executable built next to this test binary (or `$POWERSGD_BINARY`), with
/// one BLAS thread, and collects its exit status, standard output and standard error.
struct CommandRunner {
    struct Outcome {
        var status: Int32
        var standardOutput: String
        var standardError: String
        var timedOut: Bool
        var all: String { standardOutput + standardError }
    }

    static func executable(named name: String, environmentOverride: String) throws -> URL {
        if let path = ProcessInfo.processInfo.environment[environmentOverride] { return URL(fileURLWithPath: path) }
        var directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        while directory.path.contains(".xctest") { directory.deleteLastPathComponent() }
        let url = directory.appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw RunnerError("\(name) not found at \(url.path); build it with `swift build` (or set \(environmentOverride))")
        }
        return url
    }

    static func powersgd() throws -> URL { try executable(named: "powersgd", environmentOverride: "POWERSGD_BINARY") }

    static func mpirun() throws -> URL {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent("mpirun")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw RunnerError("mpirun not found on PATH: install OpenMPI (scripts/bootstrap.sh installs openmpi-bin)")
    }

    /// `powersgd arguments...`; killed after `timeout` seconds. With `interruptWhen`, sent SIGINT
    /// (what Ctrl-C sends) as soon as its standard output satisfies the condition.
    static func run(_ arguments: [String], timeout: Double = 300,
                    interruptWhen: ((String) -> Bool)? = nil) throws -> Outcome {
        try launch(try powersgd(), arguments, timeout: timeout, interruptWhen: interruptWhen)
    }

    /// `mpirun -np ranks powersgd arguments...` with the flags docs/collectives.md documents.
    static func runUnderMPI(ranks: Int, _ arguments: [String], timeout: Double = 300) throws -> Outcome {
        var flags = ["-np", "\(ranks)", "--oversubscribe", "--bind-to", "none"]
        if getuid() == 0 { flags.insert("--allow-run-as-root", at: 0) }
        return try launch(try mpirun(), flags + [try powersgd().path] + arguments, timeout: timeout)
    }

    /// `powersgd arguments...` in a mount namespace of its own (`unshare -m`) in which a tmpfs of
    /// `size` (e.g. `16k`) is mounted on `directory` with `options` (e.g. `ro`): a full or read-only
    /// file system without touching the host's. Needs the right to create mount namespaces.
    static func runWithTmpfs(at directory: String, size: String, options: String = "rw", _ arguments: [String],
                             timeout: Double = 300) throws -> Outcome {
        let quoted = ([try powersgd().path] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let script = "mount -t tmpfs -o size=\(size),\(options) tmpfs '\(directory)' && exec " + quoted.joined(separator: " ")
        return try launch(URL(fileURLWithPath: "/usr/bin/unshare"), ["-m", "/bin/sh", "-c", script], timeout: timeout)
    }

    /// Whether `runWithTmpfs` can work here (root, or a user allowed to create mount namespaces).
    static let canMountTmpfs: Bool = {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare"),
              let directory = try? temporaryDirectory() else { return false }
        defer { try? FileManager.default.removeItem(at: directory) }
        let outcome = try? launch(URL(fileURLWithPath: "/usr/bin/unshare"),
                                  ["-m", "/bin/sh", "-c", "mount -t tmpfs -o size=16k tmpfs '\(directory.path)'"], timeout: 30)
        return outcome?.status == 0
    }()

    /// `bash <project>/script arguments...`.
    static func runScript(_ script: String, _ arguments: [String], timeout: Double = 300) throws -> Outcome {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return try launch(URL(fileURLWithPath: "/bin/bash"), [root.appendingPathComponent(script).path] + arguments,
                          timeout: timeout)
    }

    private static func launch(_ executable: URL, _ arguments: [String], timeout: Double,
                               interruptWhen: ((String) -> Bool)? = nil) throws -> Outcome {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "1"
        process.environment = environment
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("powersgd-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // Files, not pipes: a chatty child never blocks on a full pipe while we wait for it.
        let out = directory.appendingPathComponent("stdout"), err = directory.appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        let start = Date()
        try process.run()
        var timedOut = false
        var interrupted = false
        while process.isRunning {
            if let interruptWhen, !interrupted,
               interruptWhen((try? String(contentsOf: out, encoding: .utf8)) ?? "") {
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
        return Outcome(status: process.terminationStatus,
                       standardOutput: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                       standardError: (try? String(contentsOf: err, encoding: .utf8)) ?? "", timedOut: timedOut)
    }
}

struct RunnerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A fresh temporary directory, removed by the caller.
func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("powersgd-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
