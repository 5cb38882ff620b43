import LinearAlgebra

/// A trainable tensor and the gradient accumulated for it.
///
/// Layers and models share `Parameter` objects by reference: the optimizer and the
/// gradient reducer read and write `value` and `gradient` through the model's ordered
/// `parameters` list. `gradient` accumulates over backward passes until `zeroGradient()`
/// (PyTorch semantics).
public final class Parameter: @unchecked Sendable {
    /// Dotted name as PyTorch's `named_parameters()` would print it (e.g. `layer1.0.conv1.weight`).
    public let name: String
    public var value: Tensor
    public var gradient: Tensor
    /// True for batch-norm weights/biases and for biases: the parameters the paper's
    /// training scripts exclude from weight decay when asked.
    public let isNormalizationOrBias: Bool

    public init(name: String, value: Tensor, isNormalizationOrBias: Bool) {
        self.name = name
        self.value = value
        self.gradient = Tensor(shape: value.shape)
        self.isNormalizationOrBias = isNormalizationOrBias
    }

    public var shape: [Int] { value.shape }

    public func zeroGradient() {
        gradient.withUnsafeMutableBufferPointer { g in
            guard let base = g.baseAddress else { return }
            base.update(repeating: 0, count: g.count)
        }
    }
}

extension Array where Element == Parameter {
    /// The values in order; setting gives each parameter the tensor at its index.
    public var values: [Tensor] {
        get { map(\.value) }
        nonmutating set {
            precondition(newValue.count == count, "\(newValue.count) values for \(count) parameters")
            for (p, v) in zip(self, newValue) { p.value = v }
        }
    }

    /// The gradients in order; setting gives each parameter the tensor at its index.
    public var gradients: [Tensor] {
        get { map(\.gradient) }
        nonmutating set {
            precondition(newValue.count == count, "gradient list of \(newValue.count) tensors for \(count) parameters")
            for (p, g) in zip(self, newValue) { p.gradient = g }
        }
    }
}

/// A non-trainable state tensor saved with the model (batch-norm running statistics).
public final class Buffer: @unchecked Sendable {
    public let name: String
    public var value: Tensor

    public init(name: String, value: Tensor) {
        self.name = name
        self.value = value
    }
}
