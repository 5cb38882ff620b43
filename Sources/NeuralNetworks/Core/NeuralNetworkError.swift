/// An error thrown by a layer or model for input it cannot work on.
///
/// Messages name the layer and both shapes (what it expects, what it got), so a caller
/// who fed the wrong tensor can see which one and why.
public enum NeuralNetworkError: Error, Equatable, CustomStringConvertible {
    /// The input's shape does not fit the layer: `expected` describes the accepted shapes.
    case inputShape(layer: String, expected: String, got: [Int])
    /// A label or token id outside `0..<limit`.
    case indexOutOfRange(layer: String, index: Int, limit: Int)
    /// `backward` called without a preceding training-mode `forward`.
    case backwardWithoutForward(layer: String)
    /// A saved state that does not fit this model (name, shape or count differs).
    case stateMismatch(String)
    /// A configuration value outside its domain (e.g. dropout probability 1.5).
    case invalidConfiguration(String)
    /// A native library (oneDNN) could not run a layer's computation.
    case kernelFailure(layer: String, message: String)

    public var description: String {
        switch self {
        case let .inputShape(layer, expected, got):
            return "layer '\(layer)' expects input of shape \(expected), got \(got)"
        case let .indexOutOfRange(layer, index, limit):
            return "layer '\(layer)': index \(index) is outside 0..<\(limit)"
        case let .backwardWithoutForward(layer):
            return "layer '\(layer)': backward called before a forward pass in training mode"
        case let .stateMismatch(message):
            return "saved state does not fit: \(message)"
        case let .invalidConfiguration(message):
            return message
        case let .kernelFailure(layer, message):
            return "layer '\(layer)': \(message)"
        }
    }
}
