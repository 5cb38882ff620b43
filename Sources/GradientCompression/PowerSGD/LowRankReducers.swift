/// Builds the low-rank family's reducers from command-line specifications.
public enum LowRankReducers {
    /// The names this factory knows.
    public static let names = ["powersgd", "powersgd+", "svd"]

    /// `powersgd:…`, `powersgd+:…`, `svd:rank=2,…`.
    public static func make(_ specification: ReducerSpecification) throws -> any GradientReducer {
        switch specification.name {
        case "powersgd", "powersgd+": return try PowerSGD(specification: specification)
        default:
            throw GradientCompressionError.invalidOption(
                "unknown low-rank reducer '\(specification.name)' (known: \(names.joined(separator: ", ")))")
        }
    }
}
