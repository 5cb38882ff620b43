import LinearAlgebra

/// The word-level LSTM language model of PyTorch's `word_language_model` example (the
/// PowerSGD paper's WikiText-2 model used 3 layers of 650):
/// embedding → dropout → L-layer LSTM (dropout between layers) → dropout → linear decoder.
///
/// Tokens come as a `[T, B]` block (row-major: `tokens[t·B + b]`), targets likewise; the
/// logits are `[T·B, V]`. The hidden state is carried from one block to the next and
/// detached (truncated backpropagation through time); `resetState()` zeroes it (at the start
/// of each epoch and of evaluation).
///
/// Initialization follows the example's `init_weights`: embedding and decoder weight
/// U(−0.1, 0.1), decoder bias 0; the LSTM keeps PyTorch's U(−1/√H, 1/√H). With
/// `tiedWeights` the decoder uses the embedding matrix (requires embedding size = H), and the
/// shared tensor appears once in `parameters`, as `encoder.weight`.
public final class LSTMLanguageModel: Model {
    public let name: String
    public let vocabularySize: Int
    public let embeddingSize: Int
    public let hiddenSize: Int
    public let tiedWeights: Bool
    /// Intra-op threads for the softmax over the vocabulary (BLAS products use `BLASThreads`).
    public let threads: Int
    let encoder: Embedding
    let inputDropout: Dropout
    let rnn: LSTM
    let outputDropout: Dropout
    let decoder: Linear

    public init(vocabularySize: Int, embeddingSize: Int = 200, hiddenSize: Int = 200, layers: Int = 2,
                dropout: Float = 0.2, tiedWeights: Bool = false, seed: UInt64, threads: Int = 1) throws {
        guard vocabularySize >= 1, embeddingSize >= 1 else {
            throw NeuralNetworkError.invalidConfiguration("LSTM LM: vocabulary \(vocabularySize) and embedding \(embeddingSize) must be positive")
        }
        if tiedWeights && embeddingSize != hiddenSize {
            throw NeuralNetworkError.invalidConfiguration(
                "LSTM LM: tied weights need embedding size = hidden size (got \(embeddingSize) and \(hiddenSize))")
        }
        name = "lstm-lm"
        self.threads = threads
        self.vocabularySize = vocabularySize
        self.embeddingSize = embeddingSize
        self.hiddenSize = hiddenSize
        self.tiedWeights = tiedWeights
        var initializer = ParameterInitializer(seed: seed)
        encoder = Embedding(name: "encoder", vocabularySize: vocabularySize, embeddingSize: embeddingSize,
                            initialValue: initializer.uniform(shape: [vocabularySize, embeddingSize], bound: 0.1))
        inputDropout = try Dropout(name: "drop.input", probability: dropout, seed: initializer.derivedSeed())
        rnn = try LSTM(name: "rnn", inputSize: embeddingSize, hiddenSize: hiddenSize, layers: layers, dropout: dropout,
                       initializer: &initializer)
        outputDropout = try Dropout(name: "drop.output", probability: dropout, seed: initializer.derivedSeed())
        let decoderBias = Parameter(name: "decoder.bias", value: Tensor(shape: [vocabularySize]), isNormalizationOrBias: true)
        if tiedWeights {
            decoder = Linear(name: "decoder", tiedWeight: encoder.weight, bias: decoderBias)
        } else {
            let weight = Parameter(name: "decoder.weight",
                                   value: initializer.uniform(shape: [vocabularySize, hiddenSize], bound: 0.1),
                                   isNormalizationOrBias: false)
            decoder = Linear(name: "decoder", tiedWeight: weight, bias: decoderBias)
        }
    }

    public var parameters: [Parameter] { uniqueParameters(encoder.parameters + rnn.parameters + decoder.parameters) }
    public var buffers: [Buffer] { [] }

    public func resetState() { rnn.resetState() }

    public func saveExtraState(to writer: inout StateWriter) {
        inputDropout.saveRandomState(to: &writer)
        rnn.saveRandomState(to: &writer)
        outputDropout.saveRandomState(to: &writer)
        rnn.saveCarriedState(to: &writer)
    }

    public func loadExtraState(from reader: inout StateReader) throws {
        try inputDropout.loadRandomState(from: &reader)
        try rnn.loadRandomState(from: &reader)
        try outputDropout.loadRandomState(from: &reader)
        try rnn.loadCarriedState(from: &reader)
    }

    /// Logits `[T·B, V]` for a `[T, B]` block of token ids.
    public func forward(tokens: [Int], steps: Int, batch: Int, training: Bool) throws -> Tensor {
        guard steps > 0, batch > 0, tokens.count == steps * batch else {
            throw NeuralNetworkError.inputShape(layer: name, expected: "[\(steps), \(batch)] token ids (\(steps * batch) values)",
                                                got: [tokens.count])
        }
        lastSteps = steps
        lastBatch = batch
        var x = try encoder.forward(ids: tokens, training: training)
        x = try inputDropout.forward(x, training: training)
        x = try rnn.forward(try x.reshaped(to: [steps, batch, embeddingSize]), training: training)
        x = try outputDropout.forward(try x.reshaped(to: [steps * batch, hiddenSize]), training: training)
        return try decoder.forward(x, training: training)
    }

    /// Backpropagates ∂loss/∂logits through decoder, LSTM (BPTT) and embedding. With
    /// `onGradientReady`, calls it with each parameter's index in `parameters` once its gradient
    /// is final (`GradientReadiness`): the decoder's, then the LSTM's, then the embedding's. A tied
    /// decoder weight is the embedding matrix, final only after the embedding's backward.
    public func backward(_ logitsGradient: Tensor, onGradientReady: ((Int) -> Void)? = nil) throws {
        let readiness = onGradientReady.map {
            GradientReadiness(parameters: parameters, uses: encoder.parameters + rnn.parameters + decoder.parameters, onReady: $0)
        }
        var g = try decoder.backward(logitsGradient)
        readiness?.finished(decoder.parameters)
        g = try outputDropout.backward(g)
        g = try rnn.backward(try g.reshaped(to: [lastSteps, lastBatch, hiddenSize]))
        readiness?.finished(rnn.parameters)
        g = try inputDropout.backward(try g.reshaped(to: [lastSteps * lastBatch, embeddingSize]))
        try encoder.backward(g)
        readiness?.finished(encoder.parameters)
        readiness?.finishPass()
    }

    private var lastSteps = 0, lastBatch = 0

    /// Forward (training) + mean cross-entropy over all T·B positions + backward; returns the loss.
    /// `onGradientReady` as in `backward`.
    public func lossAndGradients(tokens: [Int], targets: [Int], steps: Int, batch: Int,
                                 onGradientReady: ((Int) -> Void)? = nil) throws -> Float {
        let logits = try forward(tokens: tokens, steps: steps, batch: batch, training: true)
        let (loss, gradient) = try SoftmaxCrossEntropy.lossAndGradient(logits: logits, labels: targets, threads: threads)
        try backward(gradient, onGradientReady: onGradientReady)
        return loss
    }

    /// Evaluation loss (mean cross-entropy; perplexity is its exponential). Carries the state.
    public func loss(tokens: [Int], targets: [Int], steps: Int, batch: Int) throws -> Float {
        let logits = try forward(tokens: tokens, steps: steps, batch: batch, training: false)
        return try SoftmaxCrossEntropy.loss(logits: logits, labels: targets)
    }
}
