/// Builds the low-rank family's reducers from command-line specifications.
public enum LowRankReducers {
    /// The names this factory knows.
    public static let names = ["powersgd", "powersgd+", "svd"]

    /// `powersgd:…`, `powersgd+:…`, `svd:rank=2,…`.
    public static func make(_ specification: ReducerSpecification) throws -> any GradientReducer {
        switch specification.name {
        case "powersgd", "powersgd+": return try PowerSGD(specification: specification)
        case "svd":
            var reader = ReducerOptionReader(specification)
            let rank = try reader.int("rank", default: 2, in: 1...4096)
            let rate = try reader.double("min-compression-rate", default: 2, in: 1e-9...1e9)
            let feedback = try reader.bool("error-feedback", default: true)
            try reader.finish()
            return try ExactSVDReducer(rank: rank, minCompressionRate: rate, errorFeedback: feedback)
        default:
            throw GradientCompressionError.invalidOption(
                "unknown low-rank reducer '\(specification.name)' (known: \(names.joined(separator: ", ")))")
        }
    }
}
