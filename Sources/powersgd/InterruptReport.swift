import Dispatch
import Foundation
import Training

/// Ctrl-C (SIGINT) during `train` or `compare`: says at which step the run stopped and what
/// is left of it (whether and how it can be resumed), then exits with 130 (128 + SIGINT, what a
/// shell reports for a process it killed). Checkpoint files are written through a rename, so
/// stopping at any moment leaves only whole files (and at most a temporary one, removed by the
/// next run).
final class InterruptReport: @unchecked Sendable {
    private let lock = NSLock()
    private var steps = 0
    private var label = ""
    private var reports: Bool
    private let source: DispatchSourceSignal
    private let message: @Sendable (_ at: String, _ label: String) -> String

    /// `reports`: whether this process prints the message (an MPI job's rank 0 says so later).
    /// `message` gets where the run stopped ("at step 12", "before the first step") and the label
    /// of what was running (`begin`).
    init(reports: Bool, message: @escaping @Sendable (_ at: String, _ label: String) -> String) {
        self.reports = reports
        self.message = message
        signal(SIGINT, SIG_IGN)  // delivered to the source below instead of killing the process
        source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler { [unowned self] in self.stop() }
        source.resume()
    }

    deinit { source.cancel() }

    func reportHere() {
        lock.lock(); defer { lock.unlock() }
        reports = true
    }

    /// A new run starts (compare's next reducer): its steps count from 0.
    func begin(_ label: String) {
        lock.lock(); defer { lock.unlock() }
        self.label = label
        steps = 0
    }

    /// Called on rank 0 after each step with the steps done (counted from step 0, resumes included).
    func completed(steps: Int) {
        lock.lock(); defer { lock.unlock() }
        self.steps = steps
    }

    private func stop() {
        lock.lock()
        let steps = self.steps, reports = self.reports, label = self.label
        lock.unlock()
        let at = steps == 0 ? "before the first step" : "at step \(steps)"
        if reports { FileHandleStandardError.write("\npowersgd: interrupted " + message(at, label) + "\n") }
        _exit(130)
    }

    /// `train`'s message: how to resume, from which checkpoint, or why it cannot.
    static func trainMessage(checkpointDirectory: URL?) -> @Sendable (String, String) -> String {
        { at, _ in
            guard let checkpointDirectory else {
                return "\(at); nothing was saved to resume from "
                    + "(train with --checkpoint-dir and --checkpoint-every to be able to resume with --resume)"
            }
            guard let latest = try? Checkpoint.latestStep(in: checkpointDirectory) else {
                return "\(at); no checkpoint was written yet in \(checkpointDirectory.path), "
                    + "so --resume has nothing to continue from"
            }
            return "\(at); resume with --resume (it continues from the newest checkpoint, "
                + "step \(latest), in \(checkpointDirectory.path))"
        }
    }
}
