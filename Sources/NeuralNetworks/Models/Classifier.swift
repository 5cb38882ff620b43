import LinearAlgebra

/// A network mapping batch-major inputs `[B] + inputShape` to logits `[B, classes]`, with
/// softmax cross-entropy training. The ResNets and the MLP are classifiers.
public final class Classifier: Model {
    public let name: String
    /// The shape of one example (e.g. `[3, 32, 32]`).
    public let inputShape: [Int]
    public let classes: Int
    public let body: Layer

    public init(name: String, inputShape: [Int], classes: Int, body: Layer) {
        self.name = name
        self.inputShape = inputShape
        self.classes = classes
        self.body = body
    }

    public var parameters: [Parameter] { uniqueParameters(body.parameters) }
    public var buffers: [Buffer] { body.buffers }
    public func saveExtraState(to writer: inout StateWriter) { body.saveRandomState(to: &writer) }
    public func loadExtraState(from reader: inout StateReader) throws { try body.loadRandomState(from: &reader) }

    /// Logits `[B, classes]`. In training mode the layers cache what `backward` needs and
    /// batch norm uses (and updates) batch statistics.
    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        guard input.shape.count == inputShape.count + 1, Array(input.shape.dropFirst()) == inputShape,
              input.shape[0] > 0 else {
            throw NeuralNetworkError.inputShape(layer: name, expected: "[B, " + inputShape.map(String.init).joined(separator: ", ") + "]",
                                                got: input.shape)
        }
        return try body.forward(input, training: training)
    }

    /// Backpropagates ∂loss/∂logits, adding into every parameter's gradient; with
    /// `onGradientReady`, calls it with each parameter's index in `parameters` as soon as that
    /// gradient is final (`GradientReadiness`), every index once, in reverse order.
    public func backward(_ logitsGradient: Tensor, onGradientReady: ((Int) -> Void)? = nil) throws {
        let readiness = onGradientReady.map { GradientReadiness(parameters: parameters, uses: body.parameters, onReady: $0) }
        _ = try GradientReadiness.backward(body, logitsGradient, reporting: readiness)
        readiness?.finishPass()
    }

    /// Forward (training mode) + mean softmax cross-entropy + backward; returns the loss.
    /// Gradients are *added* to the existing ones: call `zeroGradients()` first. `onGradientReady`
    /// as in `backward`.
    public func lossAndGradients(input: Tensor, labels: [Int], onGradientReady: ((Int) -> Void)? = nil) throws -> Float {
        let logits = try forward(input, training: true)
        let (loss, gradient) = try SoftmaxCrossEntropy.lossAndGradient(logits: logits, labels: labels)
        try backward(gradient, onGradientReady: onGradientReady)
        return loss
    }

    /// Evaluation: mean loss and the number of correct top-1 predictions.
    public func evaluate(input: Tensor, labels: [Int]) throws -> (loss: Float, correct: Int) {
        let logits = try forward(input, training: false)
        let loss = try SoftmaxCrossEntropy.loss(logits: logits, labels: labels)
        var correct = 0
        logits.withUnsafeBufferPointer { z in
            for (row, label) in labels.enumerated() {
                let r = z[(row * classes)..<((row + 1) * classes)]
                if r.indices.max(by: { r[$0] < r[$1] })! - row * classes == label { correct += 1 }
            }
        }
        return (loss, correct)
    }
}
