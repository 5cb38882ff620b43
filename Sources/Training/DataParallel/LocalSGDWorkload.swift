import LinearAlgebra

/// A workload trained by local SGD in rounds of `syncEvery` = H inner steps (DiLoCo, Douillard
/// et al. 2023; local SGD, Lin et al. 2018; ALGORITHMS.md §12.4).
///
/// Within a round each worker steps its own replica with its own (inner) optimizer on its own
/// shard and sends nothing. At the round's end (`DataParallelTrainer` calls the two methods
/// below) the pseudo-gradients Δ_w = θ₀ − θ_w go through the run's reducer, which sees them as
/// its gradient list — so a compressing reducer's error memory carries over from round to
/// round — and the outer optimizer moves the round's start θ₀ by the average; every replica
/// then restarts from the new θ₀, identical on every worker.
///
/// What stays per worker: the inner optimizer's momentum (it persists across rounds, as
/// DiLoCo's inner AdamW state does) and batch-norm running statistics (as in per-step data
/// parallelism here). The state adds θ₀ and the outer momentum; both are replicated, while the
/// inner parameters and optimizer differ between ranks mid-round, so the replicated part that
/// a resume compares across ranks is θ₀ and the outer state alone.
public final class LocalSGDWorkload: Workload {
    public let inner: Workload
    public let syncEvery: Int
    public let outer: OuterOptimizer
    /// θ₀: the parameters every worker started the current round from.
    public private(set) var roundStart: [Tensor]
    /// The outer optimizer's momentum m (empty until the first outer step with momentum).
    var outerMomentum: [Tensor] = []

    public init(inner: Workload, syncEvery: Int, outer: OuterOptimizer) {
        precondition(syncEvery >= 1, "sync-every must be at least 1")
        self.inner = inner
        self.syncEvery = syncEvery
        self.outer = outer
        roundStart = inner.parameterValues
    }

    /// Whether step `step` (0-based, counted over the whole run) is the last of its round: every
    /// H-th step, and the run's last step, so a run never ends with replicas apart.
    public func endsRound(step: Int, totalSteps: Int) -> Bool {
        (step + 1) % syncEvery == 0 || step + 1 == totalSteps
    }

    /// Δ_w = θ₀ − θ_w, in parameter order.
    func pseudoGradients() -> [Tensor] {
        zip(roundStart, inner.parameterValues).map { start, current in
            var delta = start
            delta.withUnsafeMutableBufferPointer { d in
                current.withUnsafeBufferPointer { c in for j in 0..<d.count { d[j] -= c[j] } }
            }
            return delta
        }
    }

    /// θ₀ ← θ₀ − outer(Δ) with the group's averaged Δ; every replica restarts from it.
    func applyOuterStep(_ averagedDelta: [Tensor]) {
        outer.apply(averagedDelta, to: &roundStart, buffer: &outerMomentum)
        inner.parameterValues = roundStart
    }

    public func stepsPerEpoch(workers: Int) -> Int { inner.stepsPerEpoch(workers: workers) }
    public func computeGradients(epoch: Int, step: Int, rank: Int, workers: Int) throws -> Float {
        try inner.computeGradients(epoch: epoch, step: step, rank: rank, workers: workers)
    }
    public var gradients: [Tensor] {
        get { inner.gradients }
        set { inner.gradients = newValue }
    }
    public func takeGradients() -> [Tensor] { inner.takeGradients() }
    public func applyGradients() throws -> Float { try inner.applyGradients() }
    public var optimizerMomentum: Float { inner.optimizerMomentum }
    public var parameterValues: [Tensor] {
        get { inner.parameterValues }
        set { inner.parameterValues = newValue }
    }
    public func evaluate(rank: Int, workers: Int) throws -> EvaluationPart { try inner.evaluate(rank: rank, workers: workers) }

    public func saveState(to archive: inout StateWriter) {
        inner.saveState(to: &archive)
        saveOuterState(to: &archive)
    }

    public func restoreState(from archive: inout StateReader) throws {
        try inner.restoreState(from: &archive)
        try archive.expect("localsgd")
        let count = try archive.readInt()
        guard count == roundStart.count else {
            throw StateArchiveError.unexpectedValue(expected: "\(roundStart.count) round-start tensors", offset: archive.offset)
        }
        let start = try readTensors(shapedLike: roundStart, "a round-start tensor", from: &archive)
        let momentum = try archive.readBool() ? try readTensors(shapedLike: roundStart, "an outer momentum tensor", from: &archive) : []
        roundStart = start
        outerMomentum = momentum
    }

    /// One saved tensor per tensor of `references`, each of its shape.
    private func readTensors(shapedLike references: [Tensor], _ what: String, from archive: inout StateReader) throws -> [Tensor] {
        try references.map { reference in
            let t = try archive.readTensor()
            guard t.shape == reference.shape else {
                throw StateArchiveError.unexpectedValue(expected: "\(what) of shape \(reference.shape)", offset: archive.offset)
            }
            return t
        }
    }

    /// θ₀ and the outer momentum: what every rank holds identically, also mid-round.
    public func saveReplicatedState(to archive: inout StateWriter) { saveOuterState(to: &archive) }

    private func saveOuterState(to archive: inout StateWriter) {
        archive.write("localsgd")
        archive.write(roundStart.count)
        for t in roundStart { archive.write(t) }
        archive.write(!outerMomentum.isEmpty)
        for t in outerMomentum { archive.write(t) }
    }
}
