import Foundation

/// Why training stopped.
public enum TrainingError: Error, CustomStringConvertible {
    case nonFinite(step: Int, loss: Double, checkpoint: URL?)
    case emptyEpoch(workers: Int)
    case checkpoint(String)
    case doubleMomentum(reducer: String, optimizerMomentum: Float)
    /// Overlapped reduction asked for a local-SGD run, whose inner steps reduce nothing.
    case overlapWithLocalSGD
    /// A checkpoint file could not be written or read (`action` "cannot write", ...; the system's reason).
    case checkpointFile(action: String, path: String, reason: String)
    /// A checkpoint written by a run with other settings (worker count, seed, batch size, ...):
    /// resuming would not continue that run. A usage error: the flags must match the checkpoint.
    case configurationChanged(file: String, differences: [SettingDifference])
    /// After a restore, these ranks hold another step or replicated state than rank 0.
    case replicasDiffer(step: Int, ranks: [Int], steps: [Int], referenceStep: Int)
    /// `--overlap` cannot run with this workload or reducer: the message says which and why.
    case overlapUnsupported(String)

    /// One setting that differs between a checkpoint and the run resuming from it.
    public struct SettingDifference: Sendable, Equatable {
        /// The command-line flag without its dashes (`batch-size`), or `workers`, `reducer`.
        public var key: String
        public var saved: String
        public var current: String
        public init(key: String, saved: String, current: String) {
            self.key = key
            self.saved = saved
            self.current = current
        }
    }

    public var description: String {
        switch self {
        case let .nonFinite(step, loss, checkpoint):
            let saved = checkpoint.map {
                "; the state after the failed step is in \($0.path) for inspection (--resume continues from the last good checkpoint)"
            } ?? "; no checkpoint directory was given"
            return "training stopped at step \(step): the loss (\(loss)) or a reduced gradient is not finite — "
                + "lower the learning rate or check the data\(saved)"
        case let .emptyEpoch(workers):
            return "the training set is too small for \(workers) workers at this batch size: an epoch has no step"
        case let .checkpoint(message):
            return "checkpoint: \(message)"
        case let .checkpointFile(action, path, reason):
            return "checkpoint: \(action) \(path): \(reason)"
        case .overlapWithLocalSGD:
            return "overlap reduces gradients during backward, but local SGD's inner steps reduce nothing: "
                + "the reducer runs once a round, on the pseudo-gradients"
        case let .doubleMomentum(reducer, momentum):
            return "\(reducer) applies momentum itself; an optimizer with momentum \(momentum) would apply it twice "
                + "(build the workload's optimizer with momentum 0)"
        case let .configurationChanged(file, differences):
            let list = differences.map { "--\($0.key) \($0.saved) in the checkpoint, \($0.current) now" }.joined(separator: "; ")
            return "--resume: \(file) was written by a run with other settings (\(list)); resume with the checkpoint's "
                + "settings, or start a new run with another --checkpoint-dir"
        case let .replicasDiffer(step, ranks, steps, referenceStep):
            let what = zip(ranks, steps).map { rank, restored in
                restored == referenceStep ? "rank \(rank) holds another model or optimizer state than rank 0"
                                          : "rank \(rank) restored step \(restored), rank 0 step \(referenceStep)"
            }.joined(separator: "; ")
            return "checkpoint: after restoring step \(step), the replicas differ (\(what)): its rank files come from "
                + "different runs or steps; refusing to train replicas that would diverge"
        case let .overlapUnsupported(message):
            return "--overlap: \(message)"
        }
    }
}
