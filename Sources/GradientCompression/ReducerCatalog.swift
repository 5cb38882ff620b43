/// Every reducer by name: what `--reducer` and `compare` accept.
///
/// One `Entry` per method — its name, a one-line summary, the options it accepts with their
/// values and defaults, and its builder — declared beside the method's type
/// (`QSGD.catalogEntry`). The option reader, `powersgd reducers`, the options table of
/// docs/compressors.md (`optionsTable`, tested to be the docs' table) and the tests that visit
/// every reducer are all read from these entries, so adding a method is its file, one line in
/// `entries`, and its tests. `make` refuses an unknown option or a value out of range with an
/// error naming the reducer and what it accepts. `seed` seeds the reducer's shared randomness
/// unless the specification sets its own `seed`.
public enum ReducerCatalog {
    public struct Entry: Sendable {
        public let name: String
        public let summary: String
        /// The options the builder reads, in the order `powersgd reducers` and the docs list them.
        public let options: [ReducerOption]
        let build: @Sendable (ReducerOptionReader, UInt64) throws -> any GradientReducer

        init(name: String, summary: String, options: [ReducerOption],
             build: @escaping @Sendable (ReducerOptionReader, UInt64) throws -> any GradientReducer) {
            self.name = name
            self.summary = summary
            self.options = options
            self.build = build
        }
    }

    public static let entries: [Entry] = [
        UncompressedReducer.catalogEntry,
        PowerSGD.catalogEntry, PowerSGDPlus.catalogEntry, LGreCo.catalogEntry, ExactSVDReducer.catalogEntry, LQSGD.catalogEntry,
        QSGD.catalogEntry, TernGrad.catalogEntry, ATOMO.catalogEntry, CoordinateATOMO.catalogEntry, OneBitSGD.catalogEntry,
        MajorityVoteReducer.signSGDCatalogEntry, MajorityVoteReducer.signumCatalogEntry, SignCompressor.scaledSignCatalogEntry,
        TopK.catalogEntry, RandomK.catalogEntry, DeepGradientCompression.catalogEntry,
        HalfPrecisionCompressor.fp16CatalogEntry, HalfPrecisionCompressor.bf16CatalogEntry,
    ]

    /// The entry called `name`, or nil.
    public static func entry(named name: String) -> Entry? { entries.first { $0.name == name } }

    /// The reducer a specification names.
    public static func make(_ specification: ReducerSpecification, seed: UInt64) throws -> any GradientReducer {
        guard let entry = entry(named: specification.name) else {
            throw GradientCompressionError.invalidOption(
                "unknown reducer '\(specification.name)'; known reducers: \(entries.map(\.name).joined(separator: ", "))")
        }
        // `worker-momentum=μ` (and `worker-nesterov`) apply to every reducer: they wrap the one the
        // other options build.
        var own = specification
        let keys = [WorkerMomentumReducer.optionKey, WorkerMomentumReducer.nesterovKey]
        let momentum = own.options.filter { $0.key == keys[0] }, nesterov = own.options.filter { $0.key == keys[1] }
        own.options.removeAll { keys.contains($0.key) }
        let reader = ReducerOptionReader(own, accepting: entry.options)
        try reader.finish()
        let reducer = try entry.build(reader, seed)
        guard let option = momentum.last else {
            if !nesterov.isEmpty { throw GradientCompressionError.invalidOption("\(specification.name): \(keys[1]) needs \(keys[0])=μ") }
            return reducer
        }
        guard momentum.count == 1, let mu = Float(option.value) else {
            throw GradientCompressionError.invalidOption("\(specification.name): \(keys[0]) takes one number in (0, 1) (got '\(option.value)')")
        }
        guard nesterov.count <= 1, let isNesterov = nesterov.isEmpty ? false : Bool(nesterov[0].value) else {
            throw GradientCompressionError.invalidOption("\(specification.name): \(keys[1]) takes one value, true or false")
        }
        return try WorkerMomentumReducer(reducer, momentum: mu, nesterov: isNesterov)
    }

    /// The option keys reducer `name` accepts, or nil for an unknown name.
    public static func acceptedOptions(of name: String) -> [String]? { entry(named: name)?.options.map(\.key) }

    /// The table of every reducer and its options (values; default) that docs/compressors.md shows.
    public static var optionsTable: String {
        var lines = ["| reducer | options: values (default) |", "|---|---|"]
        for entry in entries {
            let options = entry.options.map { "`\($0.key)`: \($0.values.replacingOccurrences(of: "|", with: "\\|")) (\($0.defaultValue))" }
            lines.append("| `\(entry.name)` | \(options.isEmpty ? "—" : options.joined(separator: ", ")) |")
        }
        lines.append("")
        lines.append("Every reducer that does not apply momentum itself (all but `dgc` and `signum`) also takes "
                     + "`\(WorkerMomentumReducer.optionKey)`: μ in (0, 1), momentum kept per worker before the reducer instead of in the "
                     + "optimizer, and `\(WorkerMomentumReducer.nesterovKey)`: true|false (false), its Nesterov form (`WorkerMomentumReducer`).")
        return lines.joined(separator: "\n") + "\n"
    }
}

extension ReducerOptionReader {
    /// The `seed` option, defaulting to `run` (the run's seed) carried through Int's bit pattern.
    func seed(defaultingTo run: UInt64) throws -> UInt64 {
        UInt64(truncatingIfNeeded: try int("seed", default: Int(truncatingIfNeeded: run)))
    }
}
