import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Progress on a terminal (one line redrawn in place: epoch, step, loss, throughput, ETA), or
/// plain lines every 5% of the run when the output is a file or a pipe.
final class TerminalOutput {
    let isTerminal = isatty(STDOUT_FILENO) == 1
    private var lastPlainStep = -1
    private var recent: [Double] = []
    private var drewProgress = false

    func line(_ text: String) {
        if drewProgress { print(""); drewProgress = false }
        print(text)
        fflush(stdout)
    }

    func progress(step: Int, total: Int, epoch: Int, loss: Double, seconds: Double, examples: Int) {
        recent.append(seconds)
        if recent.count > 20 { recent.removeFirst() }
        let perStep = recent.reduce(0, +) / Double(recent.count)
        let eta = perStep * Double(total - step)
        let text = String(format: "epoch %d  step %d/%d  loss %.4f  %.0f examples/s  ETA %@", epoch + 1, step, total, loss,
                          Double(examples) / max(perStep, 1e-9), format(eta))
        if isTerminal {
            let width = 30, filled = width * step / max(total, 1)
            print("\r[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] " + text,
                  terminator: "")
            drewProgress = true
            fflush(stdout)
        } else if step == total || step - lastPlainStep >= max(1, total / 20) {
            lastPlainStep = step
            print(text)
            fflush(stdout)
        }
    }

    private func format(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }
}

/// JSON lines: one record per line (fields documented in docs/training.md).
final class JSONLinesLog {
    private let handle: FileHandle
    private let encoder = JSONEncoder()

    init(path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw RuntimeError("--log-file: cannot create \(path)")
        }
        self.handle = handle
        encoder.outputFormatting = [.sortedKeys]
    }

    func write<T: Encodable>(_ record: T) {
        guard let data = try? encoder.encode(record) else { return }
        handle.write(data + Data("\n".utf8))
    }
}
