import NeuralNetworks

/// The network DLG (Zhu et al. 2019) attacks, from the paper's code: three 5×5 convolutions of
/// 12 channels (padding 2; strides 2, 2, 1), each followed by a sigmoid, then one linear layer
/// to the classes (588 inputs on 28×28 images, 768 on 32×32). Weights and biases uniform in
/// ±0.5, as there. Smooth activations and no pooling make the gradient a smooth function of the
/// input, which is what lets gradient matching converge on it where it stalls on ReLU LeNet.
public enum SigmoidLeNet {
    public static func make(channels: Int, size: Int, classes: Int, seed: UInt64) throws -> GradientMap {
        guard size >= 8 else { throw InversionError.unsupportedModel("the sigmoid LeNet takes images of at least 8×8 (got \(size)×\(size))") }
        var initializer = ParameterInitializer(seed: seed)
        var layers: [SecondOrderLayer] = []
        var (inChannels, extent) = (channels, size)
        for stride in [2, 2, 1] {
            let convolution = ConvolutionLayer(inChannels: inChannels, outChannels: 12, kernel: 5, stride: stride, padding: 2,
                                               height: extent, width: extent, bound: 0.5, initializer: &initializer)
            layers += [convolution, SigmoidLayer(size: convolution.outputSize)]
            (inChannels, extent) = (12, convolution.outputHeight)
        }
        let features = 12 * extent * extent
        layers.append(DenseLayer(weight: initializer.uniform(shape: [classes, features], bound: 0.5).scalars,
                                 bias: initializer.uniform(shape: [classes], bound: 0.5).scalars,
                                 inputSize: features, outputSize: classes))
        return try GradientMap(layers: layers)
    }
}
