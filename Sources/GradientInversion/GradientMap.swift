import Foundation
import LinearAlgebra
import NeuralNetworks

/// The labels the loss is computed with: known classes, or the dummy label logits λ of DLG,
/// whose softmax is the soft label.
public enum AttackLabels {
    case hard([Int])
    case soft(logits: [Float])
}

/// What the network computes for one dummy batch: the loss, the parameter gradient g, and —
/// for a direction v = ∂D/∂g — the exact derivatives of v·g with respect to the input and the
/// label logits (the gradients of a matching loss D, see `SecondOrderLayer`).
public struct GradientMapValue {
    public var loss: Float
    public var gradients: [[Float]]
    public var inputDerivative: [Float]
    public var labelLogitDerivative: [Float]?
}

/// A classifier (`SecondOrderLayer`s, then mean softmax cross-entropy) whose parameter gradient
/// can be differentiated with respect to the input and the soft labels.
public final class GradientMap {
    public let layers: [SecondOrderLayer]
    public let classes: Int
    public var inputSize: Int { layers[0].inputSize }

    public init(layers: [SecondOrderLayer]) throws {
        guard let last = layers.last else { throw InversionError.unsupportedModel("a network needs at least one layer") }
        for (a, b) in zip(layers, layers.dropFirst()) where a.outputSize != b.inputSize {
            throw InversionError.unsupportedModel("layer sizes do not chain (\(a.outputSize) → \(b.inputSize))")
        }
        self.layers = layers
        classes = last.outputSize
    }

    /// The second-order mirror of a `NeuralNetworks.Classifier` (see `ClassifierMirror` for the
    /// layers it takes), sharing its current parameter values; the parameter order is the
    /// classifier's, so a reducer's gradient list lines up with `gradients`.
    public convenience init(mirroring classifier: Classifier) throws {
        var shape = classifier.inputShape
        try self.init(layers: try ClassifierMirror.layers(of: classifier.body, shape: &shape))
        guard parameterShapes == classifier.parameters.map(\.shape) else {
            throw InversionError.unsupportedModel("\(classifier.name): parameters do not line up with the mirrored layers")
        }
    }

    public var parameterShapes: [[Int]] { layers.flatMap(\.parameterShapes) }
    public var parameterCount: Int { parameterShapes.reduce(0) { $0 + $1.reduce(1, *) } }

    /// Loss and parameter gradient only.
    public func gradients(input: [Float], batch: Int, labels: AttackLabels) -> (loss: Float, gradients: [[Float]]) {
        let (loss, _) = firstOrder(input: input, batch: batch, labels: labels)
        return (loss, layers.flatMap(\.parameterGradients))
    }

    /// Loss, gradient g, and the derivatives of `direction(g)` · g with respect to the input and
    /// the label logits, where `direction` returns ∂D/∂g for the gradient just computed.
    public func evaluate(input: [Float], batch: Int, labels: AttackLabels,
                         direction: ([[Float]]) -> [[Float]]) -> GradientMapValue {
        let (loss, cache) = firstOrder(input: input, batch: batch, labels: labels)
        let g = layers.flatMap(\.parameterGradients)
        var v = direction(g)
        for layer in layers {
            let n = layer.parameterShapes.count
            layer.parameterTangents = Array(v.prefix(n))
            v.removeFirst(n)
        }
        var tangent: [Float]? = nil
        for layer in layers { tangent = layer.tangentForward(tangent) }
        let logitTangent = tangent!
        // Tangent of ∂ℓ/∂z = (p − t)/B with ṫ = 0: J_softmax·ż / B.
        var gradientTangent = [Float](repeating: 0, count: batch * classes)
        var logLikelihoodTangent = [Float](repeating: 0, count: batch * classes)
        for row in 0..<batch {
            let r = row * classes
            var pz: Float = 0
            for k in 0..<classes { pz += cache.probabilities[r + k] * logitTangent[r + k] }
            for k in 0..<classes {
                logLikelihoodTangent[r + k] = logitTangent[r + k] - pz
                gradientTangent[r + k] = cache.probabilities[r + k] * logLikelihoodTangent[r + k] / Float(batch)
            }
        }
        var back = gradientTangent
        for layer in layers.reversed() { back = layer.tangentBackward(back) }
        var labelDerivative: [Float]? = nil
        if case .soft = labels {
            // ∂ℓ/∂λ_j = −t_j (log p_j − Σ_k t_k log p_k) / B; its tangent replaces log p by its tangent.
            var d = [Float](repeating: 0, count: batch * classes)
            for row in 0..<batch {
                let r = row * classes
                var mean: Float = 0
                for k in 0..<classes { mean += cache.targets[r + k] * logLikelihoodTangent[r + k] }
                for j in 0..<classes { d[r + j] = -cache.targets[r + j] * (logLikelihoodTangent[r + j] - mean) / Float(batch) }
            }
            labelDerivative = d
        }
        for layer in layers { layer.parameterTangents = [] }
        return GradientMapValue(loss: loss, gradients: g, inputDerivative: back, labelLogitDerivative: labelDerivative)
    }

    /// ∂ℓ/∂λ of the soft-label loss (first order; for the finite-difference checks and label tests).
    public func labelLogitGradient(input: [Float], batch: Int, logits: [Float]) -> [Float] {
        let (_, cache) = firstOrder(input: input, batch: batch, labels: .soft(logits: logits))
        var d = [Float](repeating: 0, count: batch * classes)
        for row in 0..<batch {
            let r = row * classes
            var mean: Float = 0
            for k in 0..<classes { mean += cache.targets[r + k] * log(cache.probabilities[r + k]) }
            for j in 0..<classes { d[r + j] = -cache.targets[r + j] * (log(cache.probabilities[r + j]) - mean) / Float(batch) }
        }
        return d
    }

    /// ∂ℓ/∂input (first order).
    public func inputGradient(input: [Float], batch: Int, labels: AttackLabels) -> [Float] {
        firstOrder(input: input, batch: batch, labels: labels).cache.inputGradient
    }

    private struct Cache { var probabilities: [Float]; var targets: [Float]; var inputGradient: [Float] }

    private func firstOrder(input: [Float], batch: Int, labels: AttackLabels) -> (loss: Float, cache: Cache) {
        precondition(input.count == batch * inputSize, "input of \(input.count) values for a batch of \(batch) × \(inputSize)")
        var x = input
        for layer in layers { x = layer.forward(x, batch: batch) }
        let probabilities = softmaxRows(x, columns: classes)
        var targets = [Float](repeating: 0, count: batch * classes)
        switch labels {
        case .hard(let classes):
            precondition(classes.count == batch, "one label per example")
            for (row, label) in classes.enumerated() { targets[row * self.classes + label] = 1 }
        case .soft(let logits):
            precondition(logits.count == batch * classes, "one label logit per class and example")
            targets = softmaxRows(logits, columns: classes)
        }
        var loss: Float = 0
        var g = [Float](repeating: 0, count: batch * classes)
        for i in g.indices {
            loss -= targets[i] * log(max(probabilities[i], .leastNormalMagnitude))
            g[i] = (probabilities[i] - targets[i]) / Float(batch)
        }
        for layer in layers.reversed() { g = layer.backward(g) }
        return (loss / Float(batch), Cache(probabilities: probabilities, targets: targets, inputGradient: g))
    }
}

/// Row-wise softmax of a `[rows, columns]` array, shifted by each row's maximum.
func softmaxRows(_ values: [Float], columns: Int) -> [Float] {
    var out = values
    for start in stride(from: 0, to: values.count, by: columns) {
        let row = values[start..<(start + columns)]
        let top = row.max()!
        var sum: Float = 0
        for i in row.indices { out[i] = exp(values[i] - top); sum += out[i] }
        for i in row.indices { out[i] /= sum }
    }
    return out
}
