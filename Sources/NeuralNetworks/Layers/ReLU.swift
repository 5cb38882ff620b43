import LinearAlgebra

/// `max(x, 0)` element-wise on any shape. The backward pass masks by the cached output
/// (y > 0 exactly where x > 0).
public final class ReLU: Layer {
    public let name: String
    private var cachedOutput: Tensor?

    public init(name: String = "relu") { self.name = name }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        let output = ReLU.apply(input)
        cachedOutput = training ? output : nil
        return output
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        guard let output = cachedOutput else { throw NeuralNetworkError.backwardWithoutForward(layer: name) }
        guard outputGradient.shape == output.shape else {
            throw NeuralNetworkError.inputShape(layer: name + " (backward)", expected: "\(output.shape)",
                                                got: outputGradient.shape)
        }
        return ReLU.mask(outputGradient, by: output)
    }

    static func apply(_ input: Tensor) -> Tensor {
        input.withUnsafeBufferPointer { x in
            Tensor.filled(shape: input.shape) { y, n in
                let xp = x.baseAddress!
                for i in 0..<n { y[i] = Swift.max(xp[i], 0) }
            }
        }
    }

    /// `dy · [y > 0]`.
    static func mask(_ gradient: Tensor, by output: Tensor) -> Tensor {
        gradient.withUnsafeBufferPointer { dy in
            output.withUnsafeBufferPointer { y in
                Tensor.filled(shape: gradient.shape) { dx, n in
                    let dyp = dy.baseAddress!, yp = y.baseAddress!
                    for i in 0..<n { dx[i] = yp[i] > 0 ? dyp[i] : 0 }
                }
            }
        }
    }
}
