import LinearAlgebra

/// `[B, d₁, d₂, …] → [B, d₁·d₂·…]` (a reshape: no copy).
public final class Flatten: Layer {
    public let name: String
    private var inputShape: [Int]?

    public init(name: String = "flatten") { self.name = name }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        guard input.shape.count >= 1, input.shape[0] > 0 else {
            throw NeuralNetworkError.inputShape(layer: name, expected: "[B, ...] with B > 0", got: input.shape)
        }
        inputShape = input.shape
        return try input.reshaped(to: [input.shape[0], input.count / input.shape[0]])
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        guard let shape = inputShape else { throw NeuralNetworkError.backwardWithoutForward(layer: name) }
        guard outputGradient.count == Tensor.elementCount(shape) else {
            throw NeuralNetworkError.inputShape(layer: name + " (backward)",
                                                expected: "\(Tensor.elementCount(shape)) elements",
                                                got: outputGradient.shape)
        }
        return try outputGradient.reshaped(to: shape)
    }
}

/// Swaps the first two dimensions: `[B, C, H, W] ↔ [C, B, H, W]`. It is its own inverse,
/// so the same layer converts PyTorch's batch-major images into the channel-major layout
/// of the spatial layers and back.
public final class BatchChannelTranspose: Layer {
    public let name: String
    private var inputShape: [Int]?

    public init(name: String = "transpose") { self.name = name }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        guard input.shape.count >= 2 else {
            throw NeuralNetworkError.inputShape(layer: name, expected: "[D0, D1, ...] (rank ≥ 2)", got: input.shape)
        }
        inputShape = input.shape
        return BatchChannelTranspose.swap(input)
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor {
        guard let shape = inputShape else { throw NeuralNetworkError.backwardWithoutForward(layer: name) }
        var swapped = shape
        swapped.swapAt(0, 1)
        guard outputGradient.shape == swapped else {
            throw NeuralNetworkError.inputShape(layer: name + " (backward)", expected: "\(swapped)",
                                                got: outputGradient.shape)
        }
        return BatchChannelTranspose.swap(outputGradient)
    }

    /// Copies blocks of the trailing dimensions: element (i, j, rest) moves to (j, i, rest).
    static func swap(_ input: Tensor) -> Tensor {
        let d0 = input.shape[0], d1 = input.shape[1]
        let block = d0 * d1 == 0 ? 0 : input.count / (d0 * d1)
        var shape = input.shape
        shape.swapAt(0, 1)
        return input.withUnsafeBufferPointer { x in
            Tensor.filled(shape: shape) { y, _ in
                let xp = x.baseAddress!
                for i in 0..<d0 {
                    for j in 0..<d1 {
                        (y + (j &* d0 &+ i) &* block).update(from: xp + (i &* d1 &+ j) &* block, count: block)
                    }
                }
            }
        }
    }
}
