/// Bad input to the reports and simulation: what was wrong, where.
public enum ReportError: Error, Equatable, CustomStringConvertible {
    case invalidWorkers(Int)
    case unreadableLog(path: String, reason: String)
    case malformedLogLine(path: String, line: Int, reason: String)
    case noRuns
    case emptyProfile(String)

    public var description: String {
        switch self {
        case .invalidWorkers(let count):
            return "worker count \(count) is invalid: it must be at least 1"
        case .unreadableLog(let path, let reason):
            return "cannot read the run log \(path): \(reason)"
        case .malformedLogLine(let path, let line, let reason):
            return "\(path):\(line): \(reason)"
        case .noRuns:
            return "no runs to report: the logs hold no \"run\" record"
        case .emptyProfile(let reason):
            return "the simulation profile is unusable: \(reason)"
        }
    }
}
