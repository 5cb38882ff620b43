import LinearAlgebra

/// A differentiable operation with an explicit backward pass.
///
/// `forward(_:training:)` computes the output and, in training mode, caches what
/// `backward(_:)` needs (usually a reference to the input, which costs no copy since
/// `Tensor` storage is shared until written). `backward` receives ∂loss/∂output,
/// *adds* the parameter gradients into each `Parameter.gradient`, and returns
/// ∂loss/∂input.
///
/// Spatial layers (`Conv2d`, `BatchNorm2d`, pooling, `ReLU` on images) work in the
/// channel-major layout `[C, B, H, W]`: a convolution over the whole batch is then one
/// matrix product `W[O, C·k·k] · col[C·k·k, B·H'·W']` whose result is already in that
/// layout, and each channel's batch statistics are one contiguous block.
/// `BatchChannelTranspose` converts from and to PyTorch's `[B, C, H, W]`.
public protocol Layer: AnyObject {
    /// The name used in parameter names and error messages (e.g. `layer1.0.conv1`).
    var name: String { get }
    /// Trainable tensors in PyTorch's registration order.
    var parameters: [Parameter] { get }
    /// Saved non-trainable state (batch-norm running statistics).
    var buffers: [Buffer] { get }
    /// The layers this one is made of (empty for a primitive layer).
    var sublayers: [Layer] { get }
    func forward(_ input: Tensor, training: Bool) throws -> Tensor
    func backward(_ outputGradient: Tensor) throws -> Tensor
    /// Writes random-generator state (dropout) so a restored model continues bit for bit.
    func saveRandomState(to writer: inout StateWriter)
    func loadRandomState(from reader: inout StateReader) throws
}

extension Layer {
    public var parameters: [Parameter] { [] }
    public var buffers: [Buffer] { [] }
    public var sublayers: [Layer] { [] }
    /// This layer and all layers inside it, depth first in forward order.
    public var allLayers: [Layer] { [self] + sublayers.flatMap(\.allLayers) }
    public func saveRandomState(to writer: inout StateWriter) {}
    public func loadRandomState(from reader: inout StateReader) throws {}
}

/// Layers applied one after another; backward runs them in reverse.
public final class Sequential: ReportingBackward {
    public let name: String
    public let layers: [Layer]

    public init(name: String = "", _ layers: [Layer]) {
        self.name = name
        self.layers = layers
    }

    public var parameters: [Parameter] { layers.flatMap(\.parameters) }
    public var buffers: [Buffer] { layers.flatMap(\.buffers) }
    public var sublayers: [Layer] { layers }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        var x = input
        for layer in layers { x = try layer.forward(x, training: training) }
        return x
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor { try backward(outputGradient, reporting: nil) }

    public func backward(_ outputGradient: Tensor, reporting readiness: GradientReadiness?) throws -> Tensor {
        var g = outputGradient
        for layer in layers.reversed() { g = try GradientReadiness.backward(layer, g, reporting: readiness) }
        return g
    }

    public func saveRandomState(to writer: inout StateWriter) {
        for layer in layers { layer.saveRandomState(to: &writer) }
    }

    public func loadRandomState(from reader: inout StateReader) throws {
        for layer in layers { try layer.loadRandomState(from: &reader) }
    }
}

/// Joins a layer name prefix and a local name with a dot, PyTorch style.
@usableFromInline
func qualified(_ prefix: String, _ local: String) -> String {
    prefix.isEmpty ? local : prefix + "." + local
}
