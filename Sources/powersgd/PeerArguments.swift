import ArgumentParser
import Foundation

/// `--peer`: measure the PyTorch peer in the same run, so a ratio compares two figures from one
/// machine and one sitting. The peer is a script of `../shared/peers/` run with the Python of a
/// venv that has PyTorch (`--python`, or PEERS_PYTHON), or its output saved earlier
/// (`--peer-output`). Without either, a benchmark prints no peer figure and no ratio: a peer
/// figure typed into the code would be from another machine or another day.
struct PeerArguments: ParsableArguments {
    @Flag(help: "Run the PyTorch peer script in this run and report our figures against its (needs --python or PEERS_PYTHON).")
    var peer = false

    @Option(help: "Python of a venv with PyTorch for --peer (default: $PEERS_PYTHON).")
    var python: String?

    @Option(help: "Read the peer's figures from this file (the script's saved output) instead of running it.")
    var peerOutput: String?

    @Option(help: "Directory of the peer scripts.")
    var peersDirectory = "../shared/peers"

    func validate() throws {
        if peer && peerOutput == nil && pythonPath == nil {
            throw ValidationError("--peer needs the Python of a venv with PyTorch: --python PATH or PEERS_PYTHON "
                + "(python3 -m venv ~/.venvs/peers && ~/.venvs/peers/bin/pip install torch numpy)")
        }
        if let peerOutput, !FileManager.default.isReadableFile(atPath: peerOutput) {
            throw ValidationError("--peer-output: cannot read '\(peerOutput)'")
        }
    }

    var pythonPath: String? { python ?? ProcessInfo.processInfo.environment["PEERS_PYTHON"] }

    /// Whether a peer is asked for.
    var isRequested: Bool { peer || peerOutput != nil }

    /// The peer's output: the file given, or what `script` prints when run now (with `arguments`
    /// and the extra `environment`; `resultFile` names a file the script writes instead of
    /// printing, read after it ends). Nil when no peer is asked for. `onLine` sees each line of
    /// the running script's output as it arrives, with the script's process id (to read its
    /// memory at that point; run the script with PYTHONUNBUFFERED=1 so lines arrive when printed).
    /// `directory` overrides `--peers-directory` for a peer script kept in this repository.
    func output(script: String, directory: String? = nil, arguments: [String] = [], environment extra: [String: String] = [:],
                resultFile: String? = nil, onLine: ((Substring, Int32) -> Void)? = nil) throws -> String? {
        if let peerOutput { return try String(contentsOfFile: peerOutput, encoding: .utf8) }
        guard peer, let python = pythonPath else { return nil }
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw RuntimeError("--peer: '\(python)' (from \(self.python == nil ? "PEERS_PYTHON" : "--python")) is not an executable Python")
        }
        let path = URL(fileURLWithPath: directory ?? peersDirectory).appendingPathComponent(script).path
        guard FileManager.default.fileExists(atPath: path) else {
            throw RuntimeError("--peer: no peer script at \(path) (" + (directory == nil ? "set --peers-directory)" : "run from the repository's root)"))
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [path] + arguments
        // The peers/README: OPENBLAS_CORETYPE slows a current PyTorch; run the peer without it.
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_CORETYPE"] = nil
        environment["OPENBLAS_L2_SIZE"] = nil
        environment.merge(extra) { $1 }
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        FileHandleStandardError.write("running the peer: \(python) \(([path] + arguments).joined(separator: " "))\n")
        do { try process.run() } catch { throw RuntimeError("--peer: cannot run \(python): \(error.localizedDescription)") }
        var printed = Data()
        if let onLine {
            var pending = Data()
            while case let chunk = pipe.fileHandleForReading.availableData, !chunk.isEmpty {
                printed.append(chunk)
                pending.append(chunk)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    onLine(Substring(String(decoding: pending[..<newline], as: UTF8.self)), process.processIdentifier)
                    pending.removeSubrange(...newline)
                }
            }
        } else {
            printed = pipe.fileHandleForReading.readDataToEndOfFile()
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw RuntimeError("--peer: \(script) exited with status \(process.terminationStatus)")
        }
        if let resultFile { return try String(contentsOfFile: resultFile, encoding: .utf8) }
        return String(decoding: printed, as: UTF8.self)
    }

    /// From the peer scripts' lines (`qsgd_decode: 56.0 ms`, `threads=1 resnet18 ...: 27.1 samples/s`):
    /// the number followed by `unit` after the last colon of the first line that starts with
    /// `prefix`, or nil when there is no such line.
    static func figure(in output: String, line prefix: String, unit: String) -> Double? {
        for line in output.split(separator: "\n") where line.hasPrefix(prefix) {
            guard let colon = line.lastIndex(of: ":") else { continue }
            let words = line[line.index(after: colon)...].split(separator: " ")
            if words.count >= 2, words[1] == unit, let value = Double(words[0]) { return value }
        }
        return nil
    }
}
