/// An error thrown by the LinearAlgebra API for input it cannot work on.
///
/// Messages are written for the caller who passed the input: they name the
/// operation and both shapes (or the LAPACK routine and its `info` code).
public enum LinearAlgebraError: Error, Equatable, CustomStringConvertible {
    /// Two operands whose shapes do not fit together.
    case shapeMismatch(operation: String, lhs: [Int], rhs: [Int])
    /// A shape that is not valid on its own (negative extent, wrong element count, wrong rank).
    case invalidShape(operation: String, shape: [Int], reason: String)
    /// A LAPACK routine returned `info != 0`.
    case lapackFailure(routine: String, info: Int32)
    /// Any other argument outside its domain.
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .shapeMismatch(operation, lhs, rhs):
            return "\(operation): shapes \(lhs) and \(rhs) do not fit together"
        case let .invalidShape(operation, shape, reason):
            return "\(operation): shape \(shape) is invalid: \(reason)"
        case let .lapackFailure(routine, info):
            let why = info < 0 ? "argument \(-info) had an illegal value"
                               : "the algorithm did not converge (info = \(info))"
            return "LAPACK \(routine) failed: \(why)"
        case let .invalidArgument(message):
            return message
        }
    }
}
