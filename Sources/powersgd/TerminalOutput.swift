import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Progress on a terminal (one line redrawn in place: epoch, step, loss, throughput, ETA), or
/// plain lines every 5% of the run when the output is a file or a pipe.
///
/// Throughput and ETA come from the wall time between consecutive steps, evaluations excluded:
/// `evaluationFinished()` restarts the clock, so the interval that held an evaluation is dropped.
final class TerminalOutput {
    let isTerminal: Bool
    private let clock: () -> Double
    private var lastPlainStep = -1
    private var recent: [Double] = []
    private var lastTime: Double
    private var drewProgress = false
    /// The last progress line, for tests.
    private(set) var lastProgress = ""

    init(isTerminal: Bool = isatty(STDOUT_FILENO) == 1,
         clock: @escaping () -> Double = { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }) {
        self.isTerminal = isTerminal
        self.clock = clock
        lastTime = clock()
    }

    /// Called after an evaluation: the time it took is not a step's.
    func evaluationFinished() { lastTime = clock() }

    func line(_ text: String) {
        if drewProgress { print(""); drewProgress = false }
        print(text)
        fflush(stdout)
    }

    func progress(step: Int, total: Int, epoch: Int, loss: Double, examples: Int, epsilon: Double? = nil) {
        let now = clock()
        recent.append(now - lastTime)
        lastTime = now
        if recent.count > 20 { recent.removeFirst() }
        let perStep = recent.reduce(0, +) / Double(recent.count)
        let eta = perStep * Double(total - step)
        var text = String(format: "epoch %d  step %d/%d  loss %.4f  %.0f examples/s  ETA %@", epoch + 1, step, total, loss,
                          Double(examples) / max(perStep, 1e-9), format(eta))
        if let epsilon { text += String(format: "  ε %.3f", epsilon) }
        lastProgress = text
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

