/// The options of `PowerSGD`, each with its default and its trade-off (after the PyTorch
/// hook's `PowerSGDState`, whose defaults these follow where they agree with the paper).
public struct PowerSGDOptions: Sendable, Equatable {
    /// The rank r of the approximation M ≈ P̂ Qᵀ (default 2). Bytes sent grow linearly in r
    /// (r·(n+m) floats per n×m matrix); accuracy rises with r and saturates early: the paper
    /// reaches full-precision accuracy on ResNet-18/CIFAR-10 at r = 2 and on the LSTM at r = 4.
    public var rank: Int = 2

    /// Steps of plain (uncompressed) all-reduce before compression starts (default 0). A few
    /// hundred exact steps can help when the first gradients change fast; with error feedback the
    /// paper starts at once. Steps are counted by calls to `reduce`.
    public var startIteration: Int = 0

    /// A matrix is compressed only when (n + m)·r·minCompressionRate < n·m, i.e. when the factors
    /// are at least this many times smaller than the matrix (default 2). Others — every 1-D tensor
    /// (biases, batch-norm scales), small matrices — are packed into one uncompressed all-reduce:
    /// compressing them would save few bytes and cost error.
    public var minCompressionRate: Double = 2

    /// Error feedback (default on): what the approximation dropped is added to the next step's
    /// gradient, so nothing is lost, only delayed. Off, PowerSGD is a biased compressor and
    /// converges to worse models (the paper's ablation); off is useful for tests of linearity.
    public var errorFeedback: Bool = true

    /// Which residual error feedback keeps (ALGORITHMS.md §1.5).
    public var errorFeedbackResidual: ErrorFeedbackResidual = .local

    /// Warm start (default on): reuse last step's Q as the start of this step's power
    /// iteration. One power step per iteration then tracks the top subspace across steps (the
    /// paper's key trick); off, Q is redrawn from the shared generator every step and the
    /// approximation is much worse at the same cost.
    public var warmStart: Bool = true

    /// Added to each column norm in Gram–Schmidt before dividing (PyTorch's
    /// `orthogonalization_epsilon`, default 0). Zero and dependent columns are handled without it
    /// (they become zero columns); a positive value only shrinks tiny columns smoothly.
    public var orthogonalizationEpsilon: Float = 0

    /// Seed of the shared generator that draws the initial (and, without warm start, every) Q,
    /// identically on every worker: Philox keyed by (seed, step, tensor index).
    public var seed: UInt64 = 0

    public init(rank: Int = 2, startIteration: Int = 0, minCompressionRate: Double = 2, errorFeedback: Bool = true,
                errorFeedbackResidual: ErrorFeedbackResidual = .local, warmStart: Bool = true,
                orthogonalizationEpsilon: Float = 0, seed: UInt64 = 0) {
        self.rank = rank
        self.startIteration = startIteration
        self.minCompressionRate = minCompressionRate
        self.errorFeedback = errorFeedback
        self.errorFeedbackResidual = errorFeedbackResidual
        self.warmStart = warmStart
        self.orthogonalizationEpsilon = orthogonalizationEpsilon
        self.seed = seed
    }

    /// Throws for options outside their domain, naming the option.
    public func validate() throws {
        guard rank >= 1 else { throw GradientCompressionError.invalidOption("powersgd: rank must be at least 1 (got \(rank))") }
        guard startIteration >= 0 else {
            throw GradientCompressionError.invalidOption("powersgd: start-iteration must be 0 or more (got \(startIteration))")
        }
        guard minCompressionRate > 0, minCompressionRate.isFinite else {
            throw GradientCompressionError.invalidOption("powersgd: min-compression-rate must be positive (got \(minCompressionRate))")
        }
        guard orthogonalizationEpsilon >= 0, orthogonalizationEpsilon.isFinite else {
            throw GradientCompressionError.invalidOption("powersgd: epsilon must be 0 or more (got \(orthogonalizationEpsilon))")
        }
    }
}

/// The two error definitions of the reference codes (ALGORITHMS.md §1.5). Both leave the same
/// Σ over workers of the residuals, so the averaged trajectory is the same in exact arithmetic.
public enum ErrorFeedbackResidual: String, Sendable, Equatable, CaseIterable {
    /// e_w = M_w − P̂ P̂ᵀ M_w: what this worker's own input lost in the shared subspace (the epfml
    /// `powersgd` package since commit 1707180). **The default:** every worker's buffer stays
    /// bounded by its own gradients.
    case local
    /// e_w = M_w − P̂ Q̄ᵀ: this worker's input minus the group's reconstruction (the paper's code
    /// and the PyTorch hook). Each buffer also accumulates Σ_t (g_w − ḡ), a random walk of the
    /// differences between workers, which grows without bound over long runs.
    case global
}
