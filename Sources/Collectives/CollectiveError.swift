/// Why a collective could not complete, with a message for the user.
public enum CollectiveError: Error, Equatable, CustomStringConvertible {
    /// Another worker failed (threw, or its process exited); every other worker gets this error
    /// instead of waiting forever.
    case peerFailed(rank: Int, reason: String)
    /// This worker was cancelled (`GroupCancellation.cancel(rank:reason:)`); its peers get
    /// `peerFailed` naming it, with this error's description as the reason.
    case cancelled(rank: Int, reason: String)
    /// Workers called different collectives, or the same one with different sizes or roots.
    case mismatch(rank: Int, call: String, otherRank: Int, otherCall: String)
    /// A root outside 0..<size.
    case invalidRoot(root: Int, size: Int)
    /// An argument no group accepts (e.g. a group of 0 workers), with what was wrong.
    case invalidArgument(String)
    /// The transport itself failed (an MPI error code and its text).
    case transport(String)
    /// The ranks `missing` did not enter collective #`sequence` (`call`, in traffic-ledger step
    /// `step`, 0 before the first) within `seconds`, while the ranks `waiting` waited in it
    /// (`CollectiveTimeout`). Every rank of the group gets the same error.
    case timeout(missing: [Int], waiting: [Int], call: String, sequence: Int, step: Int, seconds: Double)

    public var description: String {
        switch self {
        case let .peerFailed(rank, reason):
            return "worker \(rank) failed: \(reason)"
        case let .cancelled(rank, reason):
            return "worker \(rank) was cancelled: \(reason)"
        case let .mismatch(rank, call, otherRank, otherCall):
            return "collective mismatch: rank \(rank) called \(call) while rank \(otherRank) called \(otherCall)"
        case let .invalidRoot(root, size):
            return "root \(root) is not a rank of a group of \(size)"
        case let .invalidArgument(message):
            return message
        case let .transport(message):
            return "transport error: \(message)"
        case let .timeout(missing, waiting, call, sequence, step, seconds):
            return "collective timeout: \(Self.ranks(missing)) did not enter collective #\(sequence) \(call)"
                + (step > 0 ? " (step \(step))" : "")
                + " within \(CollectiveTimeout.text(seconds)) s, while \(Self.ranks(waiting)) waited in it"
        }
    }

    /// "rank 2", "ranks 0, 1".
    static func ranks(_ list: [Int]) -> String {
        (list.count == 1 ? "rank " : "ranks ") + list.map(String.init).joined(separator: ", ")
    }
}

/// How long a collective waits for the other ranks before the group gives up, on both backends:
/// in-process, every waiting worker then throws `CollectiveError.timeout` naming the workers that
/// did not arrive; over MPI, a watchdog thread prints which ranks did not arrive and aborts the
/// job (`MPICommunicator`). It must exceed the longest time a rank legitimately spends between
/// two collectives while the others wait (an evaluation, a checkpoint write).
public enum CollectiveTimeout {
    /// 5 minutes: far above any such gap in this project's runs, far below forever.
    public static let defaultSeconds: Double = 300

    /// Throws `invalidArgument` unless `seconds` is nil (no limit) or positive and finite.
    public static func validate(_ seconds: Double?) throws {
        guard let seconds else { return }
        guard seconds > 0, seconds.isFinite else {
            throw CollectiveError.invalidArgument("the collective timeout must be a positive number of seconds (got \(seconds))")
        }
    }

    /// "300", "2.5": seconds without a trailing ".0".
    static func text(_ seconds: Double) -> String {
        seconds == seconds.rounded() && abs(seconds) < 1e15 ? String(Int64(seconds)) : "\(seconds)"
    }
}
