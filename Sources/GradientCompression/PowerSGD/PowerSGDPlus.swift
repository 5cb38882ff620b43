import Collectives
import LinearAlgebra

/// PowerSGD+ (ALGORITHMS.md §2, our design; docs/powersgd.md): PowerSGD whose every `period`-th
/// compressed step is a subspace refresh instead of a power step — the full error-corrected
/// gradient is all-reduced, each worker takes the exact SVD of the average, applies the exact
/// rank-r truncation and restarts the power iteration from Q ← V_r (`PowerSGD.refreshStep`).
/// The other steps are PowerSGD's, with its options; the refresh runs through PowerSGD's
/// `reduce(_:over:compressedStep:)` extension point, so preparation, `startIteration`, the step
/// count and the meter are PowerSGD's own.
///
/// A refresh step costs one fp32 all-reduce of the whole gradient and one thin SVD per matrix;
/// smaller periods track the optimal subspace more closely at that cost.
public struct PowerSGDPlus: GradientReducer {
    /// Compressed steps between refreshes (τ ≥ 1; compressed step 0 is a refresh).
    public let period: Int
    /// The PowerSGD doing the power steps and holding the state.
    var powerSGD: PowerSGD

    public init(_ options: PowerSGD.Options = PowerSGD.Options(), period: Int = 100) throws {
        guard period >= 1 else { throw GradientCompressionError.invalidOption("powersgd+ period must be at least 1 (got \(period))") }
        self.period = period
        self.powerSGD = try PowerSGD(options)
    }

    public var options: PowerSGD.Options { powerSGD.options }

    /// `powersgd+(rank=2,period=100,...)`: PowerSGD's options that differ from the defaults, the period after the rank.
    public var name: String {
        let parts = options.nameOptions
        return ReducerSpecification.reducerName("powersgd+", [parts[0], ("period", "\(period)")] + parts.dropFirst())
    }

    public mutating func reduce(_ gradients: inout [Tensor], over group: any Communicator) throws -> ReductionStats {
        let compressedStep = powerSGD.step - options.startIteration
        guard compressedStep >= 0, compressedStep % period == 0 else { return try powerSGD.reduce(&gradients, over: group) }
        return try powerSGD.reduce(&gradients, over: group) { reducer, gradients, layout, group in
            try reducer.refreshStep(&gradients, layout: layout, over: group)
        }
    }

    public func saveState(to archive: inout StateWriter) { powerSGD.saveState(to: &archive, named: name) }

    public mutating func restoreState(from archive: inout StateReader) throws {
        try powerSGD.restoreState(from: &archive, named: name)
    }
}

extension PowerSGDPlus {
    static let catalogEntry = ReducerCatalog.Entry(
        name: "powersgd+", summary: "PowerSGD with an exact-SVD subspace refresh every `period` steps (our §2 design)",
        options: PowerSGD.Options.declared + [ReducerOption("period", .integer(1...Int.max), default: "100")]) { o, seed in
        try PowerSGDPlus(PowerSGD.Options(reading: o, defaultSeed: seed), period: try o.int("period"))
    }
}
