import LinearAlgebra

/// Stochastic gradient descent with momentum (heavy-ball or Nesterov), weight decay and
/// gradient clipping, applied to gradients that are *already reduced* across workers
/// (the reducer runs first, ALGORITHMS.md §1.4, paper Algorithm 2). Per parameter x with
/// reduced gradient Δ:
///
///     Δ ← Δ · min(1, maxNorm / ‖Δ_all‖₂)     (optional; norm over all parameters)
///     Δ ← Δ + wd·x                           (weight decay after the reduce; optionally not on BN/bias)
///     m ← μ·m + Δ                            (m starts at 0, so the first step sets m = Δ)
///     x ← x − γ·(Δ + μ·m)   Nesterov, `.pytorch` form (`torch.optim.SGD`, dampening 0; the default)
///     x ← x − γ·(Δ + m)     Nesterov, `.paperCode` form (the PowerSGD paper's code,
///                           `replace_grad_by_momentum(..., "nesterov")`: `grad += momentum`)
///     x ← x − γ·m           heavy ball
///
/// The two Nesterov forms differ by how much of the buffer enters the step: in steady state
/// (constant Δ) m = Δ/(1 − μ), so `.pytorch` steps γΔ/(1 − μ) and `.paperCode` γΔ(2 − μ)/(1 − μ),
/// 10Δ against 11Δ at μ = 0.9. The learning rate γ comes from `schedule` at the optimizer's step count.
public final class SGD {
    /// Which Nesterov update is applied (see the type's comment).
    public enum NesterovForm: String, Sendable, Equatable, Codable, CaseIterable {
        /// x ← x − γ·(Δ + μ·m), as `torch.optim.SGD(nesterov=True)`.
        case pytorch
        /// x ← x − γ·(Δ + m), as the PowerSGD paper's training code.
        case paperCode = "paper"
    }

    public struct Options: Sendable, Equatable {
        /// Momentum μ (0 disables the buffer).
        public var momentum: Float = 0.9
        public var nesterov: Bool = true
        /// The Nesterov update when `nesterov` is on.
        public var nesterovForm: NesterovForm = .pytorch
        public var weightDecay: Float = 0
        /// Skip weight decay on batch-norm weights/biases and on biases (`Parameter.isNormalizationOrBias`).
        public var weightDecayExcludesNormalizationAndBias: Bool = false
        /// Clip the global ℓ₂ norm of all gradients to this value (nil: no clipping).
        public var maxGradientNorm: Float? = nil
        public init(momentum: Float = 0.9, nesterov: Bool = true, nesterovForm: NesterovForm = .pytorch, weightDecay: Float = 0,
                    weightDecayExcludesNormalizationAndBias: Bool = false, maxGradientNorm: Float? = nil) {
            self.momentum = momentum
            self.nesterov = nesterov
            self.nesterovForm = nesterovForm
            self.weightDecay = weightDecay
            self.weightDecayExcludesNormalizationAndBias = weightDecayExcludesNormalizationAndBias
            self.maxGradientNorm = maxGradientNorm
        }
    }

    public let options: Options
    public let schedule: LearningRateSchedule
    /// Steps taken so far (the schedule is evaluated at this count).
    public private(set) var step = 0
    private var momentumBuffers: [Tensor] = []

    public init(options: Options = Options(), schedule: LearningRateSchedule) {
        self.options = options
        self.schedule = schedule
    }

    /// The learning rate the next `apply` will use.
    public var learningRate: Float { schedule.rate(at: step) }

    /// The global ℓ₂ norm of the gradients (summed in Double over per-tensor sums of squares).
    public static func gradientNorm(_ parameters: [Parameter]) -> Float {
        var total = 0.0
        for p in parameters { total += Double(p.gradient.withUnsafeBufferPointer { Vector.sumOfSquares($0) }) }
        return Float(total.squareRoot())
    }

    /// Updates every parameter from its (reduced) gradient and advances the step count.
    /// Returns the gradient norm before clipping when clipping is on (nil otherwise).
    @discardableResult
    public func apply(to parameters: [Parameter]) -> Float? {
        if momentumBuffers.isEmpty && options.momentum != 0 {
            momentumBuffers = parameters.map { Tensor(shape: $0.value.shape) }
        }
        var clipScale: Float = 1
        var norm: Float?
        if let maxNorm = options.maxGradientNorm {
            let n = SGD.gradientNorm(parameters)
            norm = n
            // PyTorch's clip_grad_norm_: scale by maxNorm/(norm + 1e-6) when that is below 1.
            let factor = maxNorm / (n + 1e-6)
            if factor < 1 { clipScale = factor }
        }
        let lr = learningRate, mu = options.momentum, nesterov = options.nesterov
        // The share of the updated buffer in the Nesterov step: μ (PyTorch) or 1 (paper code).
        let bufferShare: Float = options.nesterovForm == .pytorch ? mu : 1
        for (index, p) in parameters.enumerated() {
            let wd = (options.weightDecayExcludesNormalizationAndBias && p.isNormalizationOrBias) ? 0 : options.weightDecay
            let n = p.value.count
            // One fused pass per parameter; d = clip·g + wd·x is the update direction before momentum.
            p.gradient.withPointer { g in
                p.value.withMutablePointer { x in
                    if mu == 0 {
                        for i in 0..<n { x[i] -= lr * (clipScale * g[i] + wd * x[i]) }
                    } else {
                        momentumBuffers[index].withMutablePointer { m in
                            if nesterov {
                                for i in 0..<n {
                                    let d = clipScale * g[i] + wd * x[i]
                                    m[i] = mu * m[i] + d
                                    x[i] -= lr * (d + bufferShare * m[i])
                                }
                            } else {
                                for i in 0..<n {
                                    m[i] = mu * m[i] + clipScale * g[i] + wd * x[i]
                                    x[i] -= lr * m[i]
                                }
                            }
                        }
                    }
                }
            }
        }
        step += 1
        return norm
    }

    /// Writes the step count and the momentum buffers (bit patterns).
    public func save(to writer: inout StateWriter) {
        writer.write("sgd")
        writer.write(step)
        writer.write(momentumBuffers.count)
        for m in momentumBuffers { writer.write(m) }
    }

    public func load(from reader: inout StateReader) throws {
        try reader.expect("sgd")
        step = try reader.readInt()
        let count = try reader.readInt()
        guard count >= 0 else { throw StateArchiveError.unexpectedValue(expected: "momentum buffer count", offset: reader.offset) }
        var buffers: [Tensor] = []
        for _ in 0..<count { buffers.append(try reader.readTensor()) }
        momentumBuffers = buffers
    }
}
