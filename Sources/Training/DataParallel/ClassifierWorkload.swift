import Datasets
import LinearAlgebra
import NeuralNetworks

/// Labeled images, batched and sharded per worker: what `ClassifierWorkload` trains on.
///
/// A batch must be a pure function of its arguments, so every run with the same seed sees the
/// same data and a resumed run continues with the right batch.
public protocol LabeledImageSource: AnyObject {
    /// Optimizer steps per epoch when `workers` workers each take `batchSize` examples a step.
    func stepsPerEpoch(workers: Int, batchSize: Int) -> Int
    /// Worker `rank`'s training batch `step` of `epoch`: inputs `[B, C, H, W]` and labels.
    func trainingBatch(epoch: Int, step: Int, rank: Int, workers: Int, batchSize: Int) throws -> (input: Tensor, labels: [Int])
    /// The number of test examples.
    var testCount: Int { get }
    /// Test examples `range`, normalized like the training data, without augmentation.
    func testBatch(_ range: Range<Int>) throws -> (input: Tensor, labels: [Int])
}

/// An image classifier replica with its SGD optimizer and its shard of a `LabeledImageSource`.
public final class ClassifierWorkload: GradientStreamingWorkload {
    public let model: Classifier
    public let optimizer: SGD
    public var optimizerMomentum: Float { optimizer.options.momentum }
    public let data: LabeledImageSource
    public let batchSize: Int
    public let evaluationBatchSize: Int
    private let parameters: [Parameter]

    public init(model: Classifier, optimizer: SGD, data: LabeledImageSource, batchSize: Int, evaluationBatchSize: Int = 250) {
        self.model = model
        self.optimizer = optimizer
        self.data = data
        self.batchSize = batchSize
        self.evaluationBatchSize = evaluationBatchSize
        parameters = model.parameters
    }

    public func stepsPerEpoch(workers: Int) -> Int { data.stepsPerEpoch(workers: workers, batchSize: batchSize) }

    public func computeGradients(epoch: Int, step: Int, rank: Int, workers: Int) throws -> Float {
        let batch = try data.trainingBatch(epoch: epoch, step: step, rank: rank, workers: workers, batchSize: batchSize)
        model.zeroGradients()
        return try model.lossAndGradients(input: batch.input, labels: batch.labels)
    }

    public var parameterShapes: [[Int]] { parameters.map(\.value.shape) }

    public func computeGradients(epoch: Int, step: Int, rank: Int, workers: Int,
                                 handingOut ready: (Int, Tensor) -> Void) throws -> Float {
        let batch = try data.trainingBatch(epoch: epoch, step: step, rank: rank, workers: workers, batchSize: batchSize)
        model.zeroGradients()
        return try withoutActuallyEscaping(ready) { ready in
            try model.lossAndGradients(input: batch.input, labels: batch.labels) { [parameters] in handOut(parameters, $0, to: ready) }
        }
    }

    public var gradients: [Tensor] {
        get { parameters.gradients }
        set { parameters.gradients = newValue }
    }

    public var parameterValues: [Tensor] {
        get { parameters.values }
        set { parameters.values = newValue }
    }

    public func takeGradients() -> [Tensor] {
        defer { for p in parameters { p.gradient = Tensor(shape: [0]) } }
        return parameters.map(\.gradient)
    }

    public func applyGradients() throws -> Float {
        let rate = optimizer.learningRate
        _ = optimizer.apply(to: parameters)
        return rate
    }

    public func evaluate(rank: Int, workers: Int) throws -> EvaluationPart {
        // Worker `rank` takes the contiguous `rank`-th share of the test set.
        let lo = data.testCount * rank / workers, hi = data.testCount * (rank + 1) / workers
        var correct = 0
        var start = lo
        while start < hi {
            let end = min(hi, start + evaluationBatchSize)
            let batch = try data.testBatch(start..<end)
            correct += try model.evaluate(input: batch.input, labels: batch.labels).correct
            start = end
        }
        return EvaluationPart(metric: .accuracy, sum: Double(correct), count: Double(hi - lo))
    }

    public func saveState(to archive: inout StateWriter) {
        model.save(to: &archive)
        optimizer.save(to: &archive)
    }

    public func restoreState(from archive: inout StateReader) throws {
        try model.load(from: &archive)
        try optimizer.load(from: &archive)
    }

    public func saveReplicatedState(to archive: inout StateWriter) {
        for p in parameters { archive.write(p.value) }
        optimizer.save(to: &archive)
    }
}

extension ImageBatcher: LabeledImageSource {}
