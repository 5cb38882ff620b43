import Foundation
import LinearAlgebra
import NeuralNetworks
import Privacy

/// DP-SGD (ALGORITHMS.md §8) around a workload: each step draws a Poisson lot, clips
/// every example's gradient to C, sums, adds this worker's share of the Gaussian noise and scales
/// so that the reducer's average over the W workers is (Σ clipped + Σ noise) / L, with L = qN the
/// expected lot size. The reducer then sees only noised gradients: compression, error feedback
/// and warm starts are post-processing of them.
///
/// Sampling: example i is in step t's lot with probability q, decided by (seed, t, i) alone, so the
/// lot is the same whatever W; worker r processes the lot's examples with i mod W = r. With
/// `--batch-size b` per worker, q = W·b/N and L = W·b: keep W·b fixed to keep q. The examples are
/// images for a classifier and windows of the token stream for the LSTM (`PrivateExamples`).
public final class DifferentiallyPrivateWorkload: Workload {
    public let inner: Workload
    public let examples: PrivateExamples
    public let settings: DifferentialPrivacySettings
    /// The noise multiplier σ (per the placement, each worker adds a share of σ²C²).
    public let noise: Double
    /// The multiplier the accountant charges each step at (the released model's; see `accountedNoise`).
    public let accountedNoise: Double
    public let sampleRate: Double
    public let seed: UInt64
    public private(set) var account: PrivacyAccount
    /// Per-example norms before clipping of this worker's last lot (for tests and diagnostics).
    public private(set) var lastNorms: [Float] = []
    public private(set) var lastLotSize = 0
    /// When set, each step keeps this worker's clipped sum before its noise, scaled as the noised
    /// gradients are (`cleanGradients`): what `PrivateAggregateError` compares the reducer's output with.
    public var keepsCleanGradients = false
    public private(set) var cleanGradients: [Tensor] = []
    private let parameters: [Parameter]

    /// Reducers whose result depends on the workers' inputs only through their sum (error feedback
    /// included): all-reduce, and PowerSGD (P = Σ M_w Q and Q = Σ M_wᵀ P̂ are sums; the residuals add
    /// up to Σ M_w − W·P̂Qᵀ). Their output is post-processing of the noised aggregate even when
    /// only rank 0 adds the noise.
    public static let sumOnlyReducers: Set<String> = ["sgd", "powersgd"]

    /// The multiplier that protects the released model. With a sum-only reducer it is the
    /// aggregate's (σ; σ√W under local placement). Any other reducer compresses each worker's
    /// message on its own, so an example's influence passes through its own worker's message:
    /// that message's noise is σ/√W (distributed) or σ (local), and central placement (no noise on
    /// the other ranks' messages) cannot be used at all for W > 1.
    public static func accountedNoise(_ sigma: Double, placement: NoisePlacement, reducer: String, workers: Int) throws -> Double {
        if sumOnlyReducers.contains(reducer) || workers == 1 { return placement.aggregateNoise(sigma, workers: workers) }
        switch placement {
        case .central:
            throw PrivacyError.invalidOption(name: "placement", value: "central",
                reason: "the noise is added on rank 0 only, and \(reducer) compresses each worker's message on its own (not a "
                    + "function of the noised sum), so the messages of ranks 1…\(workers - 1) and the model built from them "
                    + "carry un-noised data; use placement=distributed or placement=local, or the reducer sgd or powersgd")
        case .distributed: return sigma / Double(workers).squareRoot()
        case .local: return sigma
        }
    }

    public init(inner: Workload, examples: PrivateExamples, settings: DifferentialPrivacySettings, noise: Double,
                accountedNoise: Double, sampleRate: Double, seed: UInt64) {
        self.inner = inner
        self.examples = examples
        self.settings = settings
        self.noise = noise
        self.accountedNoise = accountedNoise
        self.sampleRate = sampleRate
        self.seed = seed
        account = PrivacyAccount(delta: settings.delta)
        parameters = examples.parameters
    }

    /// Wraps worker `rank`'s workload for a run of `totalSteps` steps with `reducer` (its catalog
    /// name): q = W·b/N, σ given or found for the target ε. Errors name the option at fault.
    public static func make(_ workload: Workload, settings: DifferentialPrivacySettings, reducer: String,
                            totalSteps: Int, workers: Int, seed: UInt64) throws -> DifferentiallyPrivateWorkload {
        let examples: PrivateExamples, batchSize: Int
        switch workload {
        case let classifier as ClassifierWorkload: (examples, batchSize) = (try ClassifierExamples(classifier), classifier.batchSize)
        case let language as LanguageModelWorkload: (examples, batchSize) = (LanguageModelWindows(language), language.batchSize)
        default: throw NeuralNetworkError.invalidConfiguration("--dp: no per-example gradients for this workload")
        }
        let n = examples.count
        guard n > 0 else { throw NeuralNetworkError.invalidConfiguration("--dp: the training data has no examples") }
        let q = min(1, Double(workers * batchSize) / Double(n))
        let factor = try accountedNoise(1, placement: settings.placement, reducer: reducer, workers: workers)
        let sigma = try settings.resolvedNoise(sampleRate: q, steps: totalSteps, datasetSize: n, accountingFactor: factor)
        return DifferentiallyPrivateWorkload(inner: workload, examples: examples, settings: settings, noise: sigma,
                                             accountedNoise: sigma * factor, sampleRate: q, seed: seed)
    }

    public func stepsPerEpoch(workers: Int) -> Int { inner.stepsPerEpoch(workers: workers) }

    /// Step `t`'s lot on worker `rank`: examples i ≡ rank (mod W) with u(seed, t, i) < q.
    public func lot(globalStep: Int, rank: Int, workers: Int) -> [Int] {
        let philox = Philox(seed: seed, stream: Philox.stream(0x504F_4953_534F_4E, UInt64(globalStep)))
        var chosen: [Int] = []
        var i = rank
        while i < examples.count {
            let word = philox.block(UInt64(i / 4))[i % 4]
            if Double(word) * 0x1p-32 < sampleRate { chosen.append(i) }
            i += workers
        }
        return chosen
    }

    public func computeGradients(epoch: Int, step: Int, rank: Int, workers: Int) throws -> Float {
        let globalStep = epoch * stepsPerEpoch(workers: workers) + step
        let indices = lot(globalStep: globalStep, rank: rank, workers: workers)
        lastLotSize = indices.count
        var loss: Float = 0
        if indices.isEmpty {
            for p in parameters { p.zeroGradient() }
            lastNorms = []
        } else {
            let clipped = try examples.clippedSum(indices, epoch: epoch, clip: Float(settings.clip), perLayer: settings.perLayer)
            loss = clipped.loss
            lastNorms = clipped.norms
        }
        // This worker's noise share, then × W/L so the reducer's mean over W is (Σ s_w + Σ n_w)/L.
        let deviation = noise * settings.clip * settings.placement.workerVariance(rank: rank, workers: workers).squareRoot()
        let scale = Float(Double(workers) / (sampleRate * Double(examples.count)))
        if keepsCleanGradients {
            cleanGradients = parameters.map { p in
                var clean = p.gradient
                clean.withUnsafeMutableBufferPointer { g in for i in g.indices { g[i] *= scale } }
                return clean
            }
        }
        for (k, p) in parameters.enumerated() {
            p.gradient.withUnsafeMutableBufferPointer { g in
                GaussianNoise.add(to: g, standardDeviation: deviation, seed: seed,
                                  stream: Philox.stream(0x4450_4E4F_4953_45, UInt64(globalStep), UInt64(rank), UInt64(k)))
                for i in g.indices { g[i] *= scale }
            }
        }
        account.record(sampleRate: sampleRate, noise: accountedNoise)
        return loss
    }

    public var gradients: [Tensor] {
        get { inner.gradients }
        set { inner.gradients = newValue }
    }

    public var parameterValues: [Tensor] {
        get { inner.parameterValues }
        set { inner.parameterValues = newValue }
    }

    public func takeGradients() -> [Tensor] { inner.takeGradients() }

    public func applyGradients() throws -> Float { try inner.applyGradients() }
    public var optimizerMomentum: Float { inner.optimizerMomentum }
    public func evaluate(rank: Int, workers: Int) throws -> EvaluationPart { try inner.evaluate(rank: rank, workers: workers) }

    public func saveState(to archive: inout StateWriter) {
        inner.saveState(to: &archive)
        saveAccount(to: &archive)
    }

    public func restoreState(from archive: inout StateReader) throws {
        try inner.restoreState(from: &archive)
        let count = try archive.readInt()
        var restored = PrivacyAccount(delta: settings.delta)
        for _ in 0..<count {
            let q = try archive.readDouble(), sigma = try archive.readDouble(), steps = try archive.readInt()
            restored.record(sampleRate: q, noise: sigma, steps: steps)
        }
        account = restored
    }

    public func saveReplicatedState(to archive: inout StateWriter) {
        inner.saveReplicatedState(to: &archive)
        saveAccount(to: &archive)
    }

    private func saveAccount(to archive: inout StateWriter) {
        archive.write(account.entries.count)
        for e in account.entries {
            archive.write(e.sampleRate)
            archive.write(e.noise)
            archive.write(e.steps)
        }
    }
}
