import LinearAlgebra

extension PowerSGD {
    /// Which error-feedback memory a worker keeps (ALGORITHMS.md §1.5).
    public enum ErrorFeedback: String, Sendable, CaseIterable {
        /// No memory: the rank-r approximation's error is lost every step. Biased; converges
        /// worse at low rank (the paper's "no EF" ablation). For tests of linearity.
        case off
        /// Variant B (default): `e_w = M_w − P̂ P̂ᵀ M_w`, the worker's input minus its own
        /// projection on the shared subspace, computed from the local, un-reduced Q_w.
        /// Σ_w e_w equals variant A's, so the averaged trajectory is the same, but every
        /// worker's buffer stays bounded: variant A's buffers also accumulate the random walk
        /// Σ_t (g_w − ḡ) of inter-worker gradient differences. Costs one extra small copy
        /// (the local Q before its all-reduce) and r more multiply-adds per element.
        case local
        /// Variant A: `e_w = M_w − P̂ Q̄ᵀ`, the input minus the group's reconstruction (the
        /// paper's code and PyTorch's hook). Offered for comparison with those.
        case global
    }

    /// The options of PowerSGD, each with its trade-off.
    public struct Options: Sendable, Equatable {
        /// The rank r of the approximation (default 2). Payload per matrix `4·r·(n+m)` bytes:
        /// higher r approximates better (fewer steps to an accuracy) and sends more; the
        /// paper's ResNet-18 runs reach full accuracy from rank 2, and rank 1 loses ~0.5 %.
        public var rank = 2
        /// Steps of plain all-reduce before compression starts (default 0). A few exact steps
        /// help when early gradients change fast (the PyTorch hook defaults to 1000 for DDP's
        /// bucket rebuild, which does not exist here); each one costs a full fp32 all-reduce.
        public var startIteration = 0
        /// A tensor is compressed only if its factors are this many times smaller than the
        /// tensor: `(n+m)·r·rate < n·m` (default 2, as in the hook). Larger values leave
        /// more small matrices exact at the price of bytes; 1-D tensors never qualify.
        public var minCompressionRate = 2.0
        /// Error feedback (default `.local`, variant B: see `ErrorFeedback`). Off makes
        /// PowerSGD biased and lose accuracy; on costs one gradient-sized buffer per worker.
        public var errorFeedback = ErrorFeedback.local
        /// Reuse last step's Q as the start of this step's power iteration (default on). One
        /// power-iteration step per training step then tracks the top subspace over time
        /// (subspace iteration spread over steps); off draws a fresh shared random Q every
        /// step, which approximates much worse at the same cost.
        public var warmStart = true
        /// Added to each column norm in the orthonormalization (default 0). Zero columns are
        /// handled without it (they become zero, never NaN); set it only to match the
        /// hook's `orthogonalization_epsilon` numbers.
        public var orthogonalizationEpsilon: Float = 0
        /// Gram–Schmidt or Householder QR for P̂; nil picks Gram–Schmidt up to rank 8 (cheaper,
        /// accurate at small r) and Householder above (stable for any r).
        public var orthonormalization: Orthonormalization? = nil
        /// The seed of the shared counter-based generator: the initial (or every non-warm)
        /// Q of tensor i at step t is drawn from Philox(seed, stream(t, i)) on every worker,
        /// so all workers agree without communicating.
        public var seed: UInt64 = 0
        /// Process same-shape matrices as batches (default off): their P and Q blocks are
        /// contiguous in the packed buffers and the kernels visit each group back to back, as
        /// the PyTorch hook's `batch_tensors_with_same_shape` does to launch one batched product
        /// per shape. Every matrix still gets its own products with the same arithmetic, so the
        /// results are bit-identical in-process; with a ring all-reduce whose summation order
        /// depends on an element's position they agree to float rounding. On the CPU there is
        /// no kernel launch to amortize: the trade-off is nil either way (measured in
        /// docs/powersgd.md); kept for parity with the hook and for layouts where grouping
        /// keeps a shape's factors in cache.
        public var groupSameShapes = false
        /// Power-iteration steps per training step (k, default 1, the paper's). Each step after
        /// the first repeats P = M·Q̄, P̂ = orth(ΣP), Q̄ = mean Mᵀ·P̂ from the previous Q̄: two more
        /// all-reduces carrying 4·r·(n+m) bytes per matrix. Larger k brings P̂ closer to the top-r
        /// left singular vectors of the averaged input (the exact rank-r SVD as k → ∞); with warm
        /// start the one step per training step already accumulates across steps, so k > 1 pays
        /// mainly without it or when the gradient's subspace moves fast (docs/studies.md, study 2).
        public var powerIterations = 1
        /// One collective per training step (default off): alternate the two half-steps of the
        /// power iteration across training steps (ALGORITHMS.md §12.3, `PowerSGD+Alternating.swift`).
        /// Even compressed steps send Q_w = M_wᵀ·P̂ (P̂ from the last P), odd steps send
        /// P_w = M_w·Q̂, each packed with the uncompressed tensors into one all-reduce: a step is
        /// one collective instead of three and carries one factor, `4·r·m` or `4·r·n` bytes per
        /// matrix instead of `4·r·(n+m)`. The price: each step's approximation comes from one
        /// half-step, a projection on the subspace found one step earlier, so it lags the
        /// gradient by a step; error feedback keeps what it misses. Needs warm start and one
        /// power iteration (the alternation is the iteration).
        public var alternate = false

        public init(rank: Int = 2, startIteration: Int = 0, minCompressionRate: Double = 2,
                    errorFeedback: ErrorFeedback = .local, warmStart: Bool = true,
                    orthogonalizationEpsilon: Float = 0, orthonormalization: Orthonormalization? = nil,
                    seed: UInt64 = 0, groupSameShapes: Bool = false, powerIterations: Int = 1) {
            self.rank = rank
            self.startIteration = startIteration
            self.minCompressionRate = minCompressionRate
            self.errorFeedback = errorFeedback
            self.warmStart = warmStart
            self.orthogonalizationEpsilon = orthogonalizationEpsilon
            self.orthonormalization = orthonormalization
            self.seed = seed
            self.groupSameShapes = groupSameShapes
            self.powerIterations = powerIterations
        }

        /// Throws `invalidOption` naming the option and its domain.
        public func validate() throws {
            guard rank >= 1 else { throw GradientCompressionError.invalidOption("powersgd rank must be at least 1 (got \(rank))") }
            guard startIteration >= 0 else {
                throw GradientCompressionError.invalidOption("powersgd start-iteration must be 0 or more (got \(startIteration))")
            }
            guard minCompressionRate.isFinite, minCompressionRate > 0 else {
                throw GradientCompressionError.invalidOption("powersgd min-compression-rate must be a positive number (got \(minCompressionRate))")
            }
            guard orthogonalizationEpsilon.isFinite, orthogonalizationEpsilon >= 0 else {
                throw GradientCompressionError.invalidOption("powersgd epsilon must be finite and ≥ 0 (got \(orthogonalizationEpsilon))")
            }
            guard powerIterations >= 1 else {
                throw GradientCompressionError.invalidOption("powersgd power-iterations must be at least 1 (got \(powerIterations))")
            }
            if alternate {
                guard warmStart else {
                    throw GradientCompressionError.invalidOption(
                        "powersgd alternate=true needs warm-start=true: each half-step starts from the factor the previous step reduced")
                }
                guard powerIterations == 1 else {
                    throw GradientCompressionError.invalidOption(
                        "powersgd alternate=true runs one half-step per training step; power-iterations=\(powerIterations) contradicts it")
                }
            }
        }
    }
}

extension PowerSGD {
    /// A reducer from a command-line specification (`powersgd:rank=2,warm-start=false`), read by
    /// the catalog's parser with the seed 0 unless the specification sets one.
    public init(specification: ReducerSpecification) throws {
        guard specification.name == "powersgd", let reducer = try ReducerCatalog.make(specification, seed: 0) as? PowerSGD else {
            throw GradientCompressionError.invalidOption("'\(specification.name)' is not powersgd")
        }
        self = reducer
    }
}

extension PowerSGD.Options {
    /// The options `init(reading:defaultSeed:)` reads: those of the catalog's `powersgd`, and of
    /// `powersgd+` and `lgreco` before their own.
    static let declared: [ReducerOption] = [
        ReducerOption("rank", .integer(1...4096), default: "2"),
        ReducerOption("start-iteration", .integer(0...Int.max), default: "0"),
        ReducerOption("min-compression-rate", .number(1e-9...1e9), default: "2"),
        ReducerOption("error-feedback", .choice(["local", "global", "off", "true", "false"]), default: "true"),
        ReducerOption("residual", .choice(["local", "global"]), default: "local"),
        ReducerOption("warm-start", .flag, default: "true"),
        ReducerOption("epsilon", .number(0...1), default: "0"),
        ReducerOption("orthonormalization", .choice(["auto", "gram-schmidt", "householder"]), default: "auto"),
        .seed,
        ReducerOption("group-same-shapes", .flag, default: "false"),
        ReducerOption("power-iterations", .integer(1...64), default: "1"),
    ]

    /// PowerSGD's options from a specification: the one parser behind the catalog's `powersgd`,
    /// `powersgd+` and `lgreco` (and so `PowerSGD(specification:)`). `error-feedback` is a
    /// variant (local, global, off) or a flag, with `residual` choosing the variant when on;
    /// a variant that contradicts a given `residual` is an error.
    init(reading o: ReducerOptionReader, defaultSeed: UInt64) throws {
        self.init()
        rank = try o.int("rank")
        startIteration = try o.int("start-iteration")
        minCompressionRate = try o.double("min-compression-rate")
        let feedback = try o.choice("error-feedback"), residual = try o.choice("residual")
        switch feedback {
        case "true": errorFeedback = residual == "local" ? .local : .global
        case "false", "off": errorFeedback = .off
        default:
            if o.isGiven("residual"), residual != feedback {
                throw GradientCompressionError.invalidOption(
                    "\(o.specification.name): error-feedback=\(feedback) contradicts residual=\(residual)")
            }
            errorFeedback = feedback == "local" ? .local : .global
        }
        warmStart = try o.bool("warm-start")
        orthogonalizationEpsilon = Float(try o.double("epsilon"))
        switch try o.choice("orthonormalization") {
        case "gram-schmidt": orthonormalization = .gramSchmidt
        case "householder": orthonormalization = .householder
        default: orthonormalization = nil
        }
        seed = try o.seed(defaultingTo: defaultSeed)
        groupSameShapes = try o.bool("group-same-shapes")
        powerIterations = try o.int("power-iterations")
    }

    /// The options that differ from the defaults, as `init(reading:defaultSeed:)` reads them
    /// (the seed is left out: it is the run's, not the method's); `rank` always, first.
    var nameOptions: [(key: String, value: String)] {
        var parts: [(key: String, value: String)] = [("rank", "\(rank)")]
        if errorFeedback != .local { parts.append(("error-feedback", errorFeedback.rawValue)) }
        if !warmStart { parts.append(("warm-start", "false")) }
        if powerIterations != 1 { parts.append(("power-iterations", "\(powerIterations)")) }
        if alternate { parts.append(("alternate", "true")) }
        if startIteration > 0 { parts.append(("start-iteration", "\(startIteration)")) }
        if groupSameShapes { parts.append(("group-same-shapes", "true")) }
        if minCompressionRate != 2 { parts.append(("min-compression-rate", "\(minCompressionRate)")) }
        if orthogonalizationEpsilon != 0 { parts.append(("epsilon", "\(orthogonalizationEpsilon)")) }
        switch orthonormalization {
        case .gramSchmidt?: parts.append(("orthonormalization", "gram-schmidt"))
        case .householder?: parts.append(("orthonormalization", "householder"))
        case nil: break
        }
        return parts
    }
}

extension PowerSGD {
    static let catalogEntry = ReducerCatalog.Entry(
        name: "powersgd", summary: "rank-r power iteration with warm start and error feedback",
        options: Options.declared + [ReducerOption("alternate", .flag, default: "false")]) { o, seed in
            var options = try Options(reading: o, defaultSeed: seed)
            options.alternate = try o.bool("alternate")
            return try PowerSGD(options)
        }
}
