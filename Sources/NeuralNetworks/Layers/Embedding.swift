import LinearAlgebra

/// A lookup table `weight [V, E]`: token ids → rows (PyTorch's `nn.Embedding`). The backward
/// pass adds each output row's gradient to the row of its id (a dense gradient, as PyTorch
/// without `sparse=True`, so every reducer sees the same tensor shape).
public final class Embedding {
    public let name: String
    public let vocabularySize: Int
    public let embeddingSize: Int
    public let weight: Parameter
    private var cachedIds: [Int]?

    public init(name: String, vocabularySize: Int, embeddingSize: Int, initialValue: Tensor) {
        precondition(initialValue.shape == [vocabularySize, embeddingSize],
                     "Embedding \(name): initial value \(initialValue.shape) is not [\(vocabularySize), \(embeddingSize)]")
        self.name = name
        self.vocabularySize = vocabularySize
        self.embeddingSize = embeddingSize
        weight = Parameter(name: qualified(name, "weight"), value: initialValue, isNormalizationOrBias: false)
    }

    public var parameters: [Parameter] { [weight] }

    /// `[ids.count, E]`; throws for an id outside the vocabulary.
    public func forward(ids: [Int], training: Bool) throws -> Tensor {
        if let bad = ids.first(where: { $0 < 0 || $0 >= vocabularySize }) {
            throw NeuralNetworkError.indexOutOfRange(layer: name, index: bad, limit: vocabularySize)
        }
        let e = embeddingSize
        let output = weight.value.withPointer { w in
            Tensor.filled(shape: [ids.count, e]) { y, _ in
                for (row, id) in ids.enumerated() { (y + row * e).update(from: w + id * e, count: e) }
            }
        }
        cachedIds = training ? ids : nil
        return output
    }

    public func backward(_ outputGradient: Tensor) throws {
        guard let ids = cachedIds else { throw NeuralNetworkError.backwardWithoutForward(layer: name) }
        guard outputGradient.shape == [ids.count, embeddingSize] else {
            throw NeuralNetworkError.inputShape(layer: name + " (backward)", expected: "\([ids.count, embeddingSize])",
                                                got: outputGradient.shape)
        }
        let e = embeddingSize
        outputGradient.withPointer { dy in
            weight.gradient.withMutablePointer { dw in
                for (row, id) in ids.enumerated() {
                    let src = dy + row * e, dst = dw + id * e
                    for j in 0..<e { dst[j] += src[j] }
                }
            }
        }
    }
}
