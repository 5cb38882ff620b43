import Datasets
import Foundation
import LinearAlgebra
import NeuralNetworks
import Privacy

/// What DP-SGD needs of a model and its training data: the examples (the units whose influence a
/// clipped gradient bounds) numbered 0..<count, so Poisson sampling can choose them by index, and
/// the clipped sum of a chosen set.
public protocol PrivateExamples: AnyObject {
    var count: Int { get }
    /// The parameters whose gradients `clippedSum` fills, in the model's order.
    var parameters: [Parameter] { get }
    /// Leaves Σ_j ḡ_j over the examples `indices` (as augmented in `epoch`) in the parameters' gradients.
    func clippedSum(_ indices: [Int], epoch: Int, clip: Float, perLayer: Bool) throws -> PerExampleGradients.ClippedSum
}

/// Image data that can be read by example index: what Poisson sampling needs.
public protocol IndexedImageSource: LabeledImageSource {
    var trainingCount: Int { get }
    /// Training examples `indices`, augmented (if at all) as in `epoch`.
    func trainingExamples(_ indices: [Int], epoch: Int) throws -> (input: Tensor, labels: [Int])
}

extension ImageBatcher: IndexedImageSource {}

/// A classifier's examples are its training images; their per-example gradients come from
/// `PerExampleGradients` (one backward pass where every layer allows it).
public final class ClassifierExamples: PrivateExamples {
    public let model: Classifier
    public let data: IndexedImageSource

    public init(_ workload: ClassifierWorkload) throws {
        guard let data = workload.data as? IndexedImageSource else {
            throw NeuralNetworkError.invalidConfiguration("--dp: the training data cannot be read by example index (Poisson sampling needs it)")
        }
        if let reason = PerExampleGradients.unsupportedReason(workload.model) {
            throw PrivacyError.invalidOption(name: "--model", value: workload.model.name, reason: reason)
        }
        model = workload.model
        self.data = data
    }

    public var count: Int { data.trainingCount }
    public var parameters: [Parameter] { model.parameters }

    public func clippedSum(_ indices: [Int], epoch: Int, clip: Float, perLayer: Bool) throws -> PerExampleGradients.ClippedSum {
        let batch = try data.trainingExamples(indices, epoch: epoch)
        return try PerExampleGradients.clippedSum(model, input: batch.input, labels: batch.labels, clip: clip, perLayer: perLayer)
    }
}

/// The LSTM language model's examples: the training stream cut into windows of `bptt` inputs
/// (window i predicts tokens i·bptt + 1 … i·bptt + bptt from the ones before), each run from a
/// zero hidden state. Without DP the state carries over from window to window, so no window is a
/// unit of its own; here it does not, and the unit DP protects is one window of bptt + 1 tokens
/// (a text spanning k windows is protected at group privacy k). The per-example gradients take
/// one forward and backward per window (the recurrence and the tied embedding have no one-pass
/// path here).
public final class LanguageModelWindows: PrivateExamples {
    public let model: LSTMLanguageModel
    public let stream: [Int]
    public let bptt: Int

    public init(model: LSTMLanguageModel, stream: [Int], bptt: Int) {
        self.model = model
        self.stream = stream
        self.bptt = bptt
    }

    public convenience init(_ workload: LanguageModelWorkload) {
        self.init(model: workload.model, stream: workload.corpus.train, bptt: workload.bptt)
    }

    public var count: Int { max(0, (stream.count - 1) / bptt) }
    public var parameters: [Parameter] { model.parameters }

    public func clippedSum(_ indices: [Int], epoch: Int, clip: Float, perLayer: Bool) throws -> PerExampleGradients.ClippedSum {
        try PerExampleGradients.loopClippedSum(model.parameters, examples: indices.count, clip: clip, perLayer: perLayer) { j in
            let start = indices[j] * bptt
            model.resetState()
            return try model.lossAndGradients(tokens: Array(stream[start..<(start + bptt)]),
                                              targets: Array(stream[(start + 1)...(start + bptt)]), steps: bptt, batch: 1)
        }
    }
}
