/// Builds the low-rank family's reducers from command-line specifications.
public enum LowRankReducers {
    /// The names this factory knows.
    public static let names = ["powersgd", "powersgd+", "svd", "lqsgd"]

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
        case "lqsgd":
            var reader = ReducerOptionReader(specification)
            let rank = try reader.int("rank", default: 2, in: 1...4096)
            let bits = try reader.int("bits", default: 8, in: 2...8)
            let alpha = try reader.double("alpha", default: 10, in: 1e-6...1e9)
            let seed = try reader.int("seed", default: 0, in: 0...Int.max)
            try reader.finish()
            return try LQSGD(rank: rank, bits: bits, alpha: Float(alpha), seed: UInt64(seed))
        default:
            throw GradientCompressionError.invalidOption(
                "unknown low-rank reducer '\(specification.name)' (known: \(names.joined(separator: ", ")))")
        }
    }
}
