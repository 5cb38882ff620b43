import Datasets
import LinearAlgebra
import NeuralNetworks

/// An LSTM language-model replica with its optimizer and its shard of the token stream.
///
/// Training windows follow `LanguageModelBatcher` (this worker's contiguous part of the stream,
/// `batch` columns, BPTT windows); the hidden state is carried between windows (detached) and
/// reset at the start of every epoch. Evaluation runs this worker's share of the test stream
/// from a zero state and restores the training state afterwards, so evaluating does not change
/// what training does next.
public final class LanguageModelWorkload: GradientStreamingWorkload {
    public let model: LSTMLanguageModel
    public let optimizer: SGD
    public var optimizerMomentum: Float { optimizer.options.momentum }
    public let corpus: LanguageCorpus
    public let batchSize: Int
    public let bptt: Int
    public let evaluationBatchSize: Int
    private let parameters: [Parameter]
    private var batcher: LanguageModelBatcher?

    public init(model: LSTMLanguageModel, optimizer: SGD, corpus: LanguageCorpus, batchSize: Int, bptt: Int,
                evaluationBatchSize: Int = 10) {
        self.model = model
        self.optimizer = optimizer
        self.corpus = corpus
        self.batchSize = batchSize
        self.bptt = bptt
        self.evaluationBatchSize = evaluationBatchSize
        parameters = model.parameters
    }

    private func trainingBatcher(rank: Int, workers: Int) throws -> LanguageModelBatcher {
        if let batcher, batcher.rank == rank, batcher.workers == workers { return batcher }
        let made = try LanguageModelBatcher(stream: corpus.train, batch: batchSize, bptt: bptt, rank: rank, workers: workers)
        batcher = made
        return made
    }

    public func stepsPerEpoch(workers: Int) -> Int {
        (try? LanguageModelBatcher(stream: corpus.train, batch: batchSize, bptt: bptt, rank: 0, workers: workers).windows) ?? 0
    }

    public func computeGradients(epoch: Int, step: Int, rank: Int, workers: Int) throws -> Float {
        let window = try trainingBatcher(rank: rank, workers: workers).window(step)
        if step == 0 { model.resetState() }
        model.zeroGradients()
        return try model.lossAndGradients(tokens: window.input, targets: window.targets, steps: window.steps, batch: batchSize)
    }

    public var parameterShapes: [[Int]] { parameters.map(\.value.shape) }

    public func computeGradients(epoch: Int, step: Int, rank: Int, workers: Int,
                                 handingOut ready: (Int, Tensor) -> Void) throws -> Float {
        let window = try trainingBatcher(rank: rank, workers: workers).window(step)
        if step == 0 { model.resetState() }
        model.zeroGradients()
        return try withoutActuallyEscaping(ready) { ready in
            try model.lossAndGradients(tokens: window.input, targets: window.targets, steps: window.steps, batch: batchSize) {
                [parameters] in handOut(parameters, $0, to: ready)
            }
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
        optimizer.apply(to: parameters)
        return rate
    }

    public func evaluate(rank: Int, workers: Int) throws -> EvaluationPart {
        var saved = StateWriter()
        model.saveExtraState(to: &saved)
        defer {
            var reader = StateReader(saved.bytes)
            try? model.loadExtraState(from: &reader)
        }
        model.resetState()
        let batcher = try LanguageModelBatcher(stream: corpus.test, batch: evaluationBatchSize, bptt: bptt, rank: rank, workers: workers)
        var nats = 0.0, tokens = 0.0
        for index in 0..<batcher.windows {
            let window = batcher.window(index)
            let loss = try model.loss(tokens: window.input, targets: window.targets, steps: window.steps, batch: evaluationBatchSize)
            nats += Double(loss) * Double(window.targets.count)
            tokens += Double(window.targets.count)
        }
        return EvaluationPart(metric: .perplexity, sum: nats, count: tokens)
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
