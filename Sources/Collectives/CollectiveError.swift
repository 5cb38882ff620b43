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
        }
    }
}
