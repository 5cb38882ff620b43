/// The sum of two paths from one input: `main(x) + shortcut(x)`, the residual connection of a
/// ResNet block (the ReLU after the sum is the next layer). An empty `shortcut` is the identity;
/// otherwise it is, as in the ResNets, a strided 1×1 convolution and a batch norm.
///
/// Every pass is linear in what the two paths return: forward and tangent forward add the
/// paths' outputs; backward and tangent backward send the same (tangent of the) output gradient
/// down both paths and add what comes back. Parameters are the main path's, then the shortcut's
/// (the order of `NeuralNetworks.BasicBlock`).
public final class ResidualBlockLayer: SecondOrderLayer {
    public let main: [SecondOrderLayer]
    public let shortcut: [SecondOrderLayer]
    public var inputSize: Int { main[0].inputSize }
    public var outputSize: Int { main[main.count - 1].outputSize }

    public init(main: [SecondOrderLayer], shortcut: [SecondOrderLayer]) throws {
        guard let first = main.first, let last = main.last else { throw InversionError.unsupportedModel("a residual block needs a main path") }
        for path in [main, shortcut] {
            for (a, b) in zip(path, path.dropFirst()) where a.outputSize != b.inputSize {
                throw InversionError.unsupportedModel("residual block: layer sizes do not chain (\(a.outputSize) → \(b.inputSize))")
            }
        }
        let shortcutSizes = shortcut.isEmpty ? (first.inputSize, first.inputSize) : (shortcut[0].inputSize, shortcut[shortcut.count - 1].outputSize)
        guard shortcutSizes == (first.inputSize, last.outputSize) else {
            throw InversionError.unsupportedModel("residual block: the shortcut maps \(shortcutSizes.0) → \(shortcutSizes.1) values, "
                                                  + "the main path \(first.inputSize) → \(last.outputSize)")
        }
        self.main = main
        self.shortcut = shortcut
    }

    private var layers: [SecondOrderLayer] { main + shortcut }

    public var parameterShapes: [[Int]] { layers.flatMap(\.parameterShapes) }
    public var parameterGradients: [[Float]] { layers.flatMap(\.parameterGradients) }

    public var parameters: [[Float]] {
        get { layers.flatMap(\.parameters) }
        set { distribute(newValue) { $0.parameters = $1 } }
    }

    /// Empty (all tangents zero) is passed on as empty to every layer.
    public var parameterTangents: [[Float]] {
        get { layers.flatMap(\.parameterTangents) }
        set { newValue.isEmpty ? layers.forEach { $0.parameterTangents = [] } : distribute(newValue) { $0.parameterTangents = $1 } }
    }

    /// Hands each layer its run of `tensors`, in parameter order.
    private func distribute(_ tensors: [[Float]], _ assign: (SecondOrderLayer, [[Float]]) -> Void) {
        precondition(tensors.count == parameterShapes.count, "one tensor per parameter of the block")
        var rest = tensors[...]
        for layer in layers {
            let n = layer.parameterShapes.count
            assign(layer, Array(rest.prefix(n)))
            rest = rest.dropFirst(n)
        }
    }

    private static func sum(_ a: [Float], _ b: [Float]) -> [Float] { zip(a, b).map { $0 + $1 } }

    public func forward(_ input: [Float], batch: Int) -> [Float] {
        let y = main.reduce(input) { $1.forward($0, batch: batch) }
        return Self.sum(y, shortcut.reduce(input) { $1.forward($0, batch: batch) })
    }

    public func backward(_ outputGradient: [Float]) -> [Float] {
        let g = main.reversed().reduce(outputGradient) { $1.backward($0) }
        return Self.sum(g, shortcut.reversed().reduce(outputGradient) { $1.backward($0) })
    }

    /// A nil ẋ stays nil through a path until a layer with parameter tangents makes it nonzero.
    public func tangentForward(_ inputTangent: [Float]?) -> [Float] {
        let y = main.reduce(inputTangent) { $1.tangentForward($0) }!
        if shortcut.isEmpty { return inputTangent.map { Self.sum(y, $0) } ?? y }
        return Self.sum(y, shortcut.reduce(inputTangent) { $1.tangentForward($0) }!)
    }

    public func tangentBackward(_ outputGradientTangent: [Float]) -> [Float] {
        let g = main.reversed().reduce(outputGradientTangent) { $1.tangentBackward($0) }
        return Self.sum(g, shortcut.reversed().reduce(outputGradientTangent) { $1.tangentBackward($0) })
    }
}
