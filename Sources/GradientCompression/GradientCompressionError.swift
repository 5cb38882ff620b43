/// An error of a reducer's input or configuration, with a message for the user.
public enum GradientCompressionError: Error, Equatable, CustomStringConvertible {
    /// The gradient list does not match the one the reducer's state was built for
    /// (or differs across workers): names the tensor index and both shapes.
    case shapeMismatch(tensor: Int, expected: [Int], found: [Int])
    /// The number of tensors changed.
    case tensorCountMismatch(expected: Int, found: Int)
    /// Two workers hold different gradient lists: names the tensor index, both ranks and both
    /// shapes (nil: that worker has no tensor with this index). Thrown on every worker alike.
    case shapesDifferAcrossWorkers(tensor: Int, rank: Int, shape: [Int]?, otherRank: Int, otherShape: [Int]?)
    /// An option outside its domain: names the option and the allowed range.
    case invalidOption(String)
    /// A message from another worker that cannot be decoded.
    case corruptMessage(String)
    /// The reducer cannot reduce bucket by bucket (`--overlap`): names it and says why.
    case bucketingUnsupported(reducer: String, reason: String)

    public var description: String {
        switch self {
        case let .shapeMismatch(tensor, expected, found):
            return "gradient tensor \(tensor) has shape \(found), expected \(expected)"
        case let .tensorCountMismatch(expected, found):
            return "got \(found) gradient tensors, expected \(expected)"
        case let .shapesDifferAcrossWorkers(tensor, rank, shape, otherRank, otherShape):
            func show(_ s: [Int]?) -> String { s.map { "shape \($0)" } ?? "no such tensor" }
            return "workers disagree on gradient tensor \(tensor): worker \(rank) has \(show(shape)), "
                + "worker \(otherRank) has \(show(otherShape))"
        case let .invalidOption(message): return "invalid reducer option: \(message)"
        case let .corruptMessage(message): return "corrupt message: \(message)"
        case let .bucketingUnsupported(reducer, reason):
            return "\(reducer) cannot overlap its communication with the backward pass: \(reason)"
        }
    }
}
