import NeuralNetworks

/// `SecondOrderLayer`s computing what a `NeuralNetworks` layer computes in training mode, with
/// its current parameter values: `Flatten`, `Linear` (with bias), `ReLU`, `Conv2d`,
/// `BatchNorm2d` (batch statistics; its fused ReLU becomes a `ReLULayer`), `BasicBlock` (a
/// `ResidualBlockLayer` and the ReLU after the sum), `GlobalAveragePool`, and `Sequential`s of
/// them. `BatchChannelTranspose` only changes the training library's memory layout (channel-major)
/// and has no counterpart: every layer here is batch-major.
enum ClassifierMirror {
    /// The layers for `layer` applied to examples of `shape` (`[C, H, W]` or `[features]`),
    /// which is updated to the output's shape.
    static func layers(of layer: Layer, shape: inout [Int]) throws -> [SecondOrderLayer] {
        let size = shape.reduce(1, *)
        switch layer {
        case let sequential as Sequential:
            return try sequential.layers.flatMap { try layers(of: $0, shape: &shape) }
        case is BatchChannelTranspose:
            return []
        case is Flatten:
            shape = [size]
            return []
        case let linear as Linear:
            guard let bias = linear.bias else { throw InversionError.unsupportedModel("layer \(linear.name): a linear layer without bias") }
            guard size == linear.inFeatures else { throw mismatch(layer, shape) }
            shape = [linear.outFeatures]
            return [DenseLayer(weight: linear.weight.value.scalars, bias: bias.value.scalars,
                               inputSize: linear.inFeatures, outputSize: linear.outFeatures)]
        case is ReLU:
            return [ReLULayer(size: size)]
        case let conv as Conv2d:
            guard shape.count == 3, shape[0] == conv.inChannels else { throw mismatch(layer, shape) }
            let mirrored = ConvolutionLayer(weight: conv.weight.value.scalars, bias: conv.bias?.value.scalars,
                                            inChannels: conv.inChannels, outChannels: conv.outChannels, kernel: conv.kernelSize,
                                            stride: conv.stride, padding: conv.padding, height: shape[1], width: shape[2])
            shape = [conv.outChannels, mirrored.outputHeight, mirrored.outputWidth]
            return [mirrored]
        case let norm as BatchNorm2d:
            guard shape.count == 3, shape[0] == norm.channels else { throw mismatch(layer, shape) }
            let mirrored = BatchNormalizationLayer(gamma: norm.weight.value.scalars, beta: norm.bias.value.scalars,
                                                   channels: norm.channels, height: shape[1], width: shape[2], epsilon: norm.epsilon)
            return norm.appliesReLU ? [mirrored, ReLULayer(size: size)] : [mirrored]
        case let block as BasicBlock:
            var shortcutShape = shape
            let main = try [block.conv1, block.bn1, block.conv2, block.bn2].flatMap { try layers(of: $0, shape: &shape) }
            let shortcut = try ([block.shortcutConv, block.shortcutNorm] as [Layer?]).compactMap { $0 }
                .flatMap { try layers(of: $0, shape: &shortcutShape) }
            let residual = try ResidualBlockLayer(main: main, shortcut: shortcut)
            return [residual, ReLULayer(size: residual.outputSize)]
        case is GlobalAveragePool:
            guard shape.count == 3 else { throw mismatch(layer, shape) }
            defer { shape = [shape[0]] }
            return [GlobalAveragePoolingLayer(channels: shape[0], height: shape[1], width: shape[2])]
        default:
            throw InversionError.unsupportedModel("layer \(layer.name) (\(type(of: layer))) has no second-order pass; supported: Flatten, "
                                                  + "Linear with bias, ReLU, Conv2d, BatchNorm2d, BasicBlock, GlobalAveragePool")
        }
    }

    private static func mismatch(_ layer: Layer, _ shape: [Int]) -> InversionError {
        .unsupportedModel("layer \(layer.name) (\(type(of: layer))) does not take examples of shape \(shape)")
    }
}
