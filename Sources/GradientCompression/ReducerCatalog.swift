/// Every reducer by name: what `--reducer` and `compare` accept.
///
/// `make` turns a `ReducerSpecification` (`powersgd:rank=2`) into a reducer, reading each
/// option with its type and range and refusing unknown ones, so a typo is an error naming the
/// reducer and the options it accepts. `seed` seeds the reducer's shared randomness unless the
/// specification sets its own `seed`.
public enum ReducerCatalog {
    public struct Entry: Sendable {
        public var name: String
        public var summary: String
        let make: @Sendable (inout ReducerOptionReader, UInt64) throws -> any GradientReducer
    }

    public static let entries: [Entry] = [
        Entry(name: "sgd", summary: "uncompressed fp32 all-reduce (the baseline)") { _, _ in UncompressedReducer() },
        Entry(name: "powersgd", summary: "rank-r power iteration with warm start and error feedback; "
              + "options rank, start-iteration, min-compression-rate, error-feedback, residual (local|global), warm-start, epsilon, seed") { o, seed in
            try PowerSGD(options: PowerSGDOptions(
                rank: try o.int("rank", default: 2, in: 1...1024),
                startIteration: try o.int("start-iteration", default: 0, in: 0...Int.max),
                minCompressionRate: try o.double("min-compression-rate", default: 2, in: 1e-9...1e9),
                errorFeedback: try o.bool("error-feedback", default: true),
                errorFeedbackResidual: ErrorFeedbackResidual(rawValue: try o.choice("residual", default: "local", among: ["local", "global"]))!,
                warmStart: try o.bool("warm-start", default: true),
                orthogonalizationEpsilon: Float(try o.double("epsilon", default: 0, in: 0...1)),
                seed: UInt64(try o.int("seed", default: Int(truncatingIfNeeded: seed), in: 0...Int.max))))
        },
    ]

    /// The reducer a specification names.
    public static func make(_ specification: ReducerSpecification, seed: UInt64) throws -> any GradientReducer {
        guard let entry = entries.first(where: { $0.name == specification.name }) else {
            throw GradientCompressionError.invalidOption(
                "unknown reducer '\(specification.name)'; known reducers: \(entries.map(\.name).joined(separator: ", "))")
        }
        var reader = ReducerOptionReader(specification)
        let reducer = try entry.make(&reader, seed)
        try reader.finish()
        return reducer
    }
}
