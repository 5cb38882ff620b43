/// Why the emulated cluster could not be built or run.
public enum ClusterError: Error, CustomStringConvertible {
    /// A precondition of the machine (root, a tool, a kernel module) is missing; `advice` says what to do.
    case unavailable(String, advice: String)
    /// A system tool failed: its command line and what it printed.
    case command(String, String)
    /// A value the user gave cannot be used (the flag is named in the message).
    case invalid(String)

    public var description: String {
        switch self {
        case let .unavailable(reason, advice): return "\(reason); \(advice)"
        case let .command(line, message): return "'\(line)' failed: \(message.isEmpty ? "no message" : message)"
        case let .invalid(message): return message
        }
    }
}
