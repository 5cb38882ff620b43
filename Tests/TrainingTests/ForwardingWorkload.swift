import LinearAlgebra
@testable import Training

/// A test workload that changes one or two members of a real one and forwards the rest to it.
protocol ForwardingWorkload: Workload {
    var base: ClassifierWorkload { get }
}

extension ForwardingWorkload {
    func stepsPerEpoch(workers: Int) -> Int { base.stepsPerEpoch(workers: workers) }
    func computeGradients(epoch: Int, step: Int, rank: Int, workers: Int) throws -> Float {
        try base.computeGradients(epoch: epoch, step: step, rank: rank, workers: workers)
    }
    var gradients: [Tensor] {
        get { base.gradients }
        set { base.gradients = newValue }
    }
    var parameterValues: [Tensor] {
        get { base.parameterValues }
        set { base.parameterValues = newValue }
    }
    var optimizerMomentum: Float { base.optimizerMomentum }
    func takeGradients() -> [Tensor] { base.takeGradients() }
    func applyGradients() throws -> Float { try base.applyGradients() }
    func evaluate(rank: Int, workers: Int) throws -> EvaluationPart { try base.evaluate(rank: rank, workers: workers) }
    func saveState(to archive: inout StateWriter) { base.saveState(to: &archive) }
    func restoreState(from archive: inout StateReader) throws { try base.restoreState(from: &archive) }
    func saveReplicatedState(to archive: inout StateWriter) { base.saveReplicatedState(to: &archive) }
}
