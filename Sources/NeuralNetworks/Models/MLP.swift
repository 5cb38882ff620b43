import LinearAlgebra

/// A multi-layer perceptron: flatten, then `Linear → ReLU` per hidden width, then a linear head.
public enum MLP {
    public static func make(inputShape: [Int], hidden: [Int], classes: Int, seed: UInt64) -> Classifier {
        var initializer = ParameterInitializer(seed: seed)
        var layers: [Layer] = [Flatten()]
        var width = inputShape.reduce(1, *)
        for (i, h) in hidden.enumerated() {
            layers.append(Linear(name: "layers.\(2 * i)", inFeatures: width, outFeatures: h, initializer: &initializer))
            layers.append(ReLU(name: "layers.\(2 * i + 1)"))
            width = h
        }
        layers.append(Linear(name: "head", inFeatures: width, outFeatures: classes, initializer: &initializer))
        return Classifier(name: "mlp", inputShape: inputShape, classes: classes, body: Sequential(layers))
    }
}
