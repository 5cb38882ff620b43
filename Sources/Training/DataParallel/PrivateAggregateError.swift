import Collectives
import Foundation
import GradientCompression
import LinearAlgebra
import NeuralNetworks

/// The bias/variance split of one DP-SGD step with compression, measured on that step's own
/// gradients. With ḡ the clean average (Σ clipped / L over all workers, no noise), ĝ = ḡ + n̄ the
/// noised average that an uncompressed all-reduce would apply, and R the reducer's output (what
/// the optimizer applies), the error against the clean average splits exactly into
///
///     R − ḡ = n̄ + (R − ĝ),   noise part n̄ = ĝ − ḡ, compression part c = R − ĝ,
///
/// so ‖R − ḡ‖² = ‖n̄‖² + ‖c‖² + 2⟨n̄, c⟩. Without compression c = 0 and the error is the noise.
/// A compressor that discards most of the noise (a projection onto k of d directions keeps about
/// k/d of an isotropic noise's energy) makes ⟨n̄, c⟩ ≈ −‖n̄‖²·(1 − k/d): the error can then be
/// smaller than the noise alone, at the price of the signal it drops (its bias). `noiseRemoved`
/// is that fraction, −⟨n̄, c⟩/‖n̄‖²; `signalKept` is ⟨R, ḡ⟩/‖ḡ‖².
public struct PrivateAggregateErrorStep: Sendable, Codable, Equatable {
    public var step: Int
    /// ‖ḡ‖²: the clean average's squared norm (the scale of the others).
    public var cleanSquared: Double
    /// ‖n̄‖²: the noise in the average.
    public var noiseSquared: Double
    /// ‖R − ĝ‖²: what the reducer changed (compression error, with error feedback's carried part).
    public var compressionSquared: Double
    /// ⟨n̄, R − ĝ⟩.
    public var cross: Double
    /// ‖R − ḡ‖² = noise + compression + 2·cross.
    public var totalSquared: Double
    /// −⟨n̄, R − ĝ⟩ / ‖n̄‖² (0 for all-reduce; nil without noise).
    public var noiseRemoved: Double?
    /// ⟨R, ḡ⟩ / ‖ḡ‖² (1 for all-reduce).
    public var signalKept: Double
}

/// A reducer wrapped to measure `PrivateAggregateErrorStep` at every step of a DP run: before the
/// wrapped reducer runs it all-reduces this worker's clean clipped sum and its noised input (two
/// extra all-reduces, so its traffic figures are not the reducer's), and after it compares its
/// output with both. The wrapped reducer sees exactly what it would see unwrapped, so the run
/// trains as it would; every rank records the same numbers.
public final class PrivateAggregateErrorProbe: GradientReducer {
    public private(set) var inner: any GradientReducer
    public let workload: DifferentiallyPrivateWorkload
    public private(set) var steps: [PrivateAggregateErrorStep] = []

    public init(_ inner: any GradientReducer, workload: DifferentiallyPrivateWorkload) {
        self.inner = inner
        self.workload = workload
        workload.keepsCleanGradients = true
    }

    public var name: String { inner.name }
    public var appliesMomentum: Bool { inner.appliesMomentum }
    public func prepare(stepsPerEpoch: Int) { inner.prepare(stepsPerEpoch: stepsPerEpoch) }
    public func saveState(to archive: inout StateWriter) { inner.saveState(to: &archive) }
    public func restoreState(from archive: inout StateReader) throws { try inner.restoreState(from: &archive) }

    public func reduce(_ gradients: inout [Tensor], over group: any Communicator) throws -> ReductionStats {
        var clean = Self.flatten(workload.cleanGradients)
        var noised = Self.flatten(gradients)
        guard clean.count == noised.count else {
            throw NeuralNetworkError.invalidConfiguration("the DP workload kept no clean gradients for this step")
        }
        try group.allReduce(&clean, operation: .mean)
        try group.allReduce(&noised, operation: .mean)
        let stats = try inner.reduce(&gradients, over: group)
        let output = Self.flatten(gradients)
        var cleanSquared = 0.0, noiseSquared = 0.0, compressionSquared = 0.0, cross = 0.0, totalSquared = 0.0, kept = 0.0
        for i in output.indices {
            let g = Double(clean[i]), n = Double(noised[i]) - g, c = Double(output[i]) - Double(noised[i])
            let e = Double(output[i]) - g
            cleanSquared += g * g
            noiseSquared += n * n
            compressionSquared += c * c
            cross += n * c
            totalSquared += e * e
            kept += Double(output[i]) * g
        }
        steps.append(PrivateAggregateErrorStep(step: steps.count, cleanSquared: cleanSquared, noiseSquared: noiseSquared,
                                               compressionSquared: compressionSquared, cross: cross, totalSquared: totalSquared,
                                               noiseRemoved: noiseSquared > 0 ? (cross == 0 ? 0 : -cross / noiseSquared) : nil,
                                               signalKept: cleanSquared > 0 ? kept / cleanSquared : 1))
        return stats
    }

    static func flatten(_ tensors: [Tensor]) -> [Float] {
        var flat: [Float] = []
        flat.reserveCapacity(tensors.reduce(0) { $0 + $1.count })
        for t in tensors { t.withUnsafeBufferPointer { flat.append(contentsOf: $0) } }
        return flat
    }
}

/// A DP run of one reducer with the probe: every step's split, and the run's summary.
public struct PrivateAggregateErrorRun: Sendable, Codable {
    public var reducer: String
    public var steps: [PrivateAggregateErrorStep]
    /// Test accuracy after the last step.
    public var accuracy: Double
    /// The ε spent, and the σ the run used.
    public var epsilon: Double
    public var noise: Double

    /// Means over the steps of each part relative to ‖ḡ‖², and of the two fractions.
    public var meanNoiseRelative: Double { mean { $0.noiseSquared / $0.cleanSquared } }
    public var meanCompressionRelative: Double { mean { $0.compressionSquared / $0.cleanSquared } }
    public var meanCrossRelative: Double { mean { 2 * $0.cross / $0.cleanSquared } }
    public var meanTotalRelative: Double { mean { $0.totalSquared / $0.cleanSquared } }
    public var meanNoiseRemoved: Double? {
        let values = steps.compactMap(\.noiseRemoved)
        return values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
    }
    public var meanSignalKept: Double { mean(\.signalKept) }

    private func mean(_ value: (PrivateAggregateErrorStep) -> Double) -> Double {
        let usable = steps.filter { $0.cleanSquared > 0 }
        return usable.isEmpty ? .nan : usable.reduce(0) { $0 + value($1) } / Double(usable.count)
    }

    /// Trains `experiment` (which must have `dp` set) with `reducer` on `workers` in-process
    /// threads, the probe around the reducer, and evaluates at the end.
    public static func measure(experiment: Experiment, reducer: ReducerSpecification, workers: Int,
                               collectiveTimeout: Double? = CollectiveTimeout.defaultSeconds) throws -> PrivateAggregateErrorRun {
        let c = experiment.configuration
        guard let settings = c.dp else { throw NeuralNetworkError.invalidConfiguration("the split needs a DP run (--dp)") }
        let total = try experiment.schedule(workers: workers).totalSteps
        let runs = try InProcessGroup.run(workers: workers, collectiveTimeout: collectiveTimeout) { group -> PrivateAggregateErrorRun in
            let wrapped = try ReducerCatalog.make(reducer, seed: c.seed)
            let workload = try DifferentiallyPrivateWorkload.make(
                try experiment.makeWorkload(rank: group.rank, workers: group.size, reducerAppliesMomentum: wrapped.appliesMomentum),
                settings: settings, reducer: reducer.name, totalSteps: total, workers: group.size, seed: c.seed)
            let probe = PrivateAggregateErrorProbe(wrapped, workload: workload)
            var asReducer: any GradientReducer = probe
            var accuracy = Double.nan
            try DataParallelTrainer(options: .init(totalSteps: total)).run(workload: workload, reducer: &asReducer, group: group,
                                                                          onEvaluation: { accuracy = $0.value })
            return PrivateAggregateErrorRun(reducer: wrapped.name, steps: probe.steps, accuracy: accuracy,
                                            epsilon: workload.account.epsilon, noise: workload.noise)
        }
        return runs[0]
    }
}
