import Foundation

/// Runs the system tools the emulated cluster is made of (`ip`, `tc`) as child processes and
/// waits for them; a failure throws with the command line and what the tool printed.
enum Subprocess {
    struct Result {
        var status: Int32
        var output: String
        var error: String
    }

    /// The first executable named `name` on `PATH` or in the system directories root's tools live in.
    static func find(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        for directory in directories {
            let candidate = (directory as NSString).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs `executable arguments...` to completion (killed after `timeout` seconds: these tools
    /// answer in milliseconds, so a hang is a fault and must not hang the command).
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], timeout: Double = 20) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read both pipes while the tool runs so a chatty one never blocks on a full pipe.
        let output = Collected(), error = Collected()
        let group = DispatchGroup()
        for (pipe, collected) in [(out, output), (err, error)] {
            group.enter()
            DispatchQueue.global().async { collected.data = pipe.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(2_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        group.wait()
        return Result(status: process.terminationStatus, output: String(decoding: output.data, as: UTF8.self),
                      error: String(decoding: error.data, as: UTF8.self))
    }

    /// A pipe's bytes, written by its reader thread and read after `DispatchGroup.wait`.
    private final class Collected: @unchecked Sendable { var data = Data() }

    /// Runs and throws `ClusterError.command` unless the tool exits 0.
    @discardableResult
    static func check(_ executable: String, _ arguments: [String]) throws -> String {
        let result = try run(executable, arguments)
        guard result.status == 0 else {
            throw ClusterError.command(([executable] + arguments).joined(separator: " "),
                                       result.error.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return result.output
    }
}
