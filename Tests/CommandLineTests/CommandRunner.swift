import Foundation
import TestSupport

/// Runs the `powersgd` executable built next to this test binary (or `$POWERSGD_BINARY`), with
/// one BLAS thread, and collects its exit status, standard output and standard error.
enum CommandRunner {
    typealias Outcome = ChildProcess.Outcome

    static func powersgd() throws -> URL { try ChildProcess.built("powersgd", environmentOverride: "POWERSGD_BINARY") }

    /// `powersgd arguments...`; killed after `timeout` seconds. With `interruptWhen`, sent SIGINT
    /// (what Ctrl-C sends) as soon as its standard output satisfies the condition.
    static func run(_ arguments: [String], timeout: Double = 300,
                    interruptWhen: ((String) -> Bool)? = nil) throws -> Outcome {
        try launch(try powersgd(), arguments, timeout: timeout, interruptWhen: interruptWhen)
    }

    /// `mpirun -np ranks powersgd arguments...` with the flags docs/collectives.md documents.
    static func runUnderMPI(ranks: Int, _ arguments: [String], timeout: Double = 300) throws -> Outcome {
        try launch(try ChildProcess.mpirun(), ChildProcess.mpirunFlags(ranks: ranks) + [try powersgd().path] + arguments, timeout: timeout)
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
        try ChildProcess.run(executable, arguments, timeout: timeout,
                             watch: interruptWhen.map { condition in { condition($0) ? .interrupt : .keepWaiting } })
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
