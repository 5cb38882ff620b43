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
              + "options rank, start-iteration, min-compression-rate, error-feedback, residual (local|global), warm-start, epsilon, seed, group-same-shapes") { o, seed in
            try PowerSGD(powerSGDOptions(&o, seed: seed))
        },
        Entry(name: "powersgd+", summary: "PowerSGD with an exact-SVD subspace refresh every `period` steps (our §2 design); "
              + "PowerSGD's options plus period (default 100)") { o, seed in
            var options = try powerSGDOptions(&o, seed: seed)
            options.subspaceRefreshPeriod = try o.int("period", default: 100, in: 1...Int.max)
            return try PowerSGD(options)
        },
        Entry(name: "lgreco", summary: "L-GreCo: PowerSGD with per-tensor ranks re-planned every `period` steps by a knapsack "
              + "within the base rank's error; PowerSGD's options plus period (default 100), accumulate (10), min-rank, max-rank "
              + "(default rank/2 ... 2·rank)") { o, seed in
            let base = try powerSGDOptions(&o, seed: seed)
            let period = try o.int("period", default: 100, in: 1...Int.max)
            let accumulate = try o.int("accumulate", default: 10, in: 1...Int.max)
            let minimum = try o.int("min-rank", default: max(1, base.rank / 2), in: 1...4096)
            let maximum = try o.int("max-rank", default: 2 * base.rank, in: 1...8192)
            return try LGreCo(LGreCo.Options(powerSGD: base, period: period, accumulationSteps: accumulate,
                                              minimumRank: minimum, maximumRank: maximum))
        },
        Entry(name: "svd", summary: "exact rank-r SVD per worker, factors all-gathered; options rank, min-compression-rate, error-feedback") { o, _ in
            try ExactSVDReducer(rank: try o.int("rank", default: 2, in: 1...4096),
                                minCompressionRate: try o.double("min-compression-rate", default: 2, in: 1e-9...1e9),
                                errorFeedback: try o.bool("error-feedback", default: true))
        },
        Entry(name: "lqsgd", summary: "PowerSGD with b-bit log-quantized factors (all-gathered); options rank, bits (2-8), alpha, seed") { o, seed in
            try LQSGD(rank: try o.int("rank", default: 2, in: 1...4096), bits: try o.int("bits", default: 8, in: 2...8),
                      alpha: Float(try o.double("alpha", default: 10, in: 1e-6...1e9)),
                      seed: UInt64(truncatingIfNeeded: try o.int("seed", default: Int(truncatingIfNeeded: seed), in: 0...Int.max)))
        },
    ] + CompressorCatalog.names.map { name in
        Entry(name: name, summary: compressorSummaries[name] ?? name) { o, seed in try CompressorCatalog.make(name, &o, seed: seed) }
    }

    /// One line per `CompressorCatalog` reducer for `powersgd reducers` (details: docs/compressors.md).
    static let compressorSummaries: [String: String] = [
        "qsgd": "QSGD: stochastic quantization to `levels` levels per bucket of `bucket` values (l2 or max norm), "
            + "Elias-coded or fixed-width, all-gathered",
        "terngrad": "TernGrad: stochastic ternary {-s, 0, s} codes with the shared scaler s, gradients clipped at clip·σ, all-gathered",
        "atomo": "ATOMO: unbiased sampling of each matrix's singular atoms with an expected `budget` atoms, all-gathered",
        "onebit": "1-bit SGD: the sign of each value and two means per column (of its positive and its negative values), with error feedback, all-gathered",
        "signsgd": "signSGD with majority vote: each worker sends gradient signs, the step follows the sign of their sum",
        "signum": "Signum: majority vote over the signs of each worker's momentum (momentum in the reducer)",
        "scaled-sign": "EF-signSGD: the sign of each value scaled by the mean magnitude, with error feedback, all-gathered",
        "topk": "Top-K: the `ratio` largest-magnitude values per tensor (or globally) as index-value pairs, with error feedback, all-gathered",
        "randomk": "Random-K: `ratio` of the values at positions drawn from the shared seed, all-reduced (error feedback, or unbiased scaling)",
        "dgc": "Deep Gradient Compression: top-`density` sparsification with momentum correction, momentum masking and a density warm-up",
        "fp16": "IEEE half precision (16-bit) all-reduce of the gradients",
        "bf16": "bfloat16 (16-bit, fp32's exponent range) all-reduce of the gradients",
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

    /// The options reducer `name` accepts (every key its builder reads), or nil for an unknown name.
    public static func acceptedOptions(of name: String) -> [String]? {
        guard let entry = entries.first(where: { $0.name == name }) else { return nil }
        var reader = ReducerOptionReader(ReducerSpecification(name: name))
        _ = try? entry.make(&reader, 1)
        return reader.known
    }
}

/// PowerSGD's options from a specification (shared by `powersgd`, `powersgd+` and `lgreco`).
private func powerSGDOptions(_ o: inout ReducerOptionReader, seed: UInt64) throws -> PowerSGD.Options {
    try PowerSGD.Options(reading: &o, defaultSeed: seed)
}
