import LinearAlgebra

/// What the data-parallel loop needs of one worker: a model replica, its optimizer and its
/// shard of the data.
///
/// The loop (`DataParallelTrainer`) owns the order of the paper's Algorithm 2: compute the
/// local gradients, let the reducer turn them into the group's average, then let the optimizer
/// apply momentum, weight decay and the learning rate to that average. A workload never talks
/// to other workers itself.
public protocol Workload: AnyObject {
    /// Optimizer steps per epoch; the same on every worker (the data shard rule guarantees it).
    func stepsPerEpoch(workers: Int) -> Int

    /// Forward and backward pass on this worker's training batch `step` of `epoch`, leaving the
    /// gradients in `gradients`. Returns the mean loss over the batch.
    func computeGradients(epoch: Int, step: Int, rank: Int, workers: Int) throws -> Float

    /// The gradient tensors in parameter order, as `computeGradients` left them; setting them gives
    /// the replica the (reduced) gradients that `applyGradients` steps with.
    var gradients: [Tensor] { get set }

    /// Moves the gradients out of the replica: returns them and keeps no reference to their
    /// storage, so the reducer writes them in place instead of copying them on write (44.7 MB a
    /// step for ResNet-18). Set `gradients` to give them back.
    func takeGradients() -> [Tensor]

    /// The parameter values in parameter order; setting them replaces every parameter's value
    /// (local SGD's round start, `LocalSGDWorkload`).
    var parameterValues: [Tensor] { get set }

    /// One optimizer step with the (reduced) `gradients`; returns the learning rate it used
    /// (the optimizer owns the schedule).
    func applyGradients() throws -> Float

    /// The optimizer's momentum μ (0 when it keeps no momentum), so the loop can refuse a reducer
    /// that applies momentum itself (`GradientReducer.appliesMomentum`).
    var optimizerMomentum: Float { get }

    /// This worker's part of the evaluation: the sum of the per-example metric and the count.
    func evaluate(rank: Int, workers: Int) throws -> EvaluationPart

    /// Model parameters, buffers and optimizer state, in the checkpoint format.
    func saveState(to archive: inout StateWriter)
    func restoreState(from archive: inout StateReader) throws

    /// The part of the state every replica holds identically (parameters and optimizer state,
    /// not batch-norm statistics or carried hidden state): what a resume compares across ranks.
    func saveReplicatedState(to archive: inout StateWriter)
}

/// A worker's share of an evaluation: Σ metric over its examples and how many there were.
public struct EvaluationPart: Sendable, Equatable {
    public enum Metric: String, Sendable, Codable {
        /// Σ correct predictions; reported as the fraction correct.
        case accuracy
        /// Σ negative log-likelihood (nats) over tokens; reported as exp(mean).
        case perplexity
    }

    public var metric: Metric
    public var sum: Double
    public var count: Double

    public init(metric: Metric, sum: Double, count: Double) {
        self.metric = metric
        self.sum = sum
        self.count = count
    }
}
