import LinearAlgebra

/// The basic residual block of He et al. (2016) as in the PowerSGD paper's CIFAR ResNet-18
/// (`/work/shared/peers/torch_train_speed.py`):
/// `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`, 3×3 convolutions, and a 1×1
/// strided convolution + normalization as shortcut when the stride or width changes.
public final class BasicBlock: ReportingBackward {
    public let name: String
    /// The main path (the first norm carries the block's inner ReLU), and the projection shortcut
    /// of a block that changes shape (nil: identity).
    public let conv1: Conv2d, bn1: Layer, conv2: Conv2d, bn2: Layer
    public let shortcutConv: Conv2d?, shortcutNorm: Layer?
    private var cachedOutput: Tensor?

    public init(name: String, inChannels: Int, outChannels: Int, stride: Int, normalization: ResNet.Normalization = .batch,
                initializer: inout ParameterInitializer, workspace: ConvolutionWorkspace, threads: Int) {
        self.name = name
        conv1 = Conv2d(name: qualified(name, "conv1"), inChannels: inChannels, outChannels: outChannels, kernelSize: 3,
                       stride: stride, padding: 1, initializer: &initializer, workspace: workspace, threads: threads)
        bn1 = normalization.layer(name: qualified(name, "bn1"), channels: outChannels, appliesReLU: true, threads: threads)
        conv2 = Conv2d(name: qualified(name, "conv2"), inChannels: outChannels, outChannels: outChannels, kernelSize: 3,
                       stride: 1, padding: 1, initializer: &initializer, workspace: workspace, threads: threads)
        bn2 = normalization.layer(name: qualified(name, "bn2"), channels: outChannels, appliesReLU: false, threads: threads)
        if stride != 1 || inChannels != outChannels {
            shortcutConv = Conv2d(name: qualified(name, "shortcut.0"), inChannels: inChannels, outChannels: outChannels,
                                  kernelSize: 1, stride: stride, padding: 0, initializer: &initializer,
                                  workspace: workspace, threads: threads)
            shortcutNorm = normalization.layer(name: qualified(name, "shortcut.1"), channels: outChannels, appliesReLU: false,
                                               threads: threads)
        } else {
            shortcutConv = nil
            shortcutNorm = nil
        }
    }

    public var parameters: [Parameter] {
        conv1.parameters + bn1.parameters + conv2.parameters + bn2.parameters
            + (shortcutConv?.parameters ?? []) + (shortcutNorm?.parameters ?? [])
    }

    public var buffers: [Buffer] { bn1.buffers + bn2.buffers + (shortcutNorm?.buffers ?? []) }
    public var sublayers: [Layer] { [conv1, bn1, conv2, bn2] + ([shortcutConv, shortcutNorm] as [Layer?]).compactMap { $0 } }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        var main = try conv1.forward(input, training: training)
        main = try bn1.forward(main, training: training)  // with the ReLU fused
        main = try conv2.forward(main, training: training)
        main = try bn2.forward(main, training: training)
        var shortcut = input
        if let shortcutConv, let shortcutNorm {
            shortcut = try shortcutNorm.forward(try shortcutConv.forward(input, training: training), training: training)
        }
        guard shortcut.shape == main.shape else {
            throw NeuralNetworkError.inputShape(layer: name, expected: "a shortcut of shape \(main.shape)", got: shortcut.shape)
        }
        // out = relu(main + shortcut), written into main's storage (uniquely owned here).
        let count = main.count
        shortcut.withPointer { s in
            main.withMutablePointer { m in
                for i in 0..<count { m[i] = Swift.max(m[i] + s[i], 0) }
            }
        }
        cachedOutput = training ? main : nil
        return main
    }

    public func backward(_ outputGradient: Tensor) throws -> Tensor { try backward(outputGradient, reporting: nil) }

    /// The shortcut branch goes first: its parameters come last in registration order, so the
    /// reports run in reverse order. The branches touch disjoint parameters and the sum below is
    /// the same either way, so the order changes no bit of the result.
    public func backward(_ outputGradient: Tensor, reporting readiness: GradientReadiness?) throws -> Tensor {
        guard let output = cachedOutput else {
            throw NeuralNetworkError.backwardWithoutForward(layer: name)
        }
        let sumGradient = ReLU.mask(outputGradient, by: output)
        let shortcutGradient: Tensor
        if let shortcutConv, let shortcutNorm {
            let normGradient = try GradientReadiness.backward(shortcutNorm, sumGradient, reporting: readiness)
            shortcutGradient = try GradientReadiness.backward(shortcutConv, normGradient, reporting: readiness)
        } else {
            shortcutGradient = sumGradient
        }
        var g = try GradientReadiness.backward(bn2, sumGradient, reporting: readiness)
        g = try GradientReadiness.backward(conv2, g, reporting: readiness)
        g = try GradientReadiness.backward(bn1, g, reporting: readiness)
        var inputGradient = try GradientReadiness.backward(conv1, g, reporting: readiness)
        shortcutGradient.withUnsafeBufferPointer { s in
            inputGradient.withUnsafeMutableBufferPointer { d in Vector.add(s, to: d) }
        }
        return inputGradient
    }
}

/// CIFAR-style residual networks.
public enum ResNet {
    /// The normalization after each convolution. Batch norm (the papers' networks) mixes the
    /// examples of a batch; group norm (Opacus's replacement, `GroupNorm.defaultGroups` groups)
    /// keeps examples apart, as DP-SGD's per-example clipping needs.
    public enum Normalization: String, Sendable, CaseIterable {
        case batch
        case group

        func layer(name: String, channels: Int, appliesReLU: Bool, threads: Int) -> Layer {
            switch self {
            case .batch: return BatchNorm2d(name: name, channels: channels, appliesReLU: appliesReLU, threads: threads)
            case .group: return GroupNorm(name: name, channels: channels, appliesReLU: appliesReLU, threads: threads)
            }
        }
    }

    /// The PowerSGD paper's CIFAR ResNet-18: 3×3 stem to 64 channels, batch norm, ReLU, four
    /// stages of two basic blocks at 64/128/256/512 channels (strides 1, 2, 2, 2), global
    /// average pooling, linear head. 11,173,962 parameters in 62 tensors for 10 classes and 3
    /// input channels at `widthMultiplier` 1; widths scale as round(64·m), round(128·m), ….
    /// Parameter order is `resnet18_shapes.py`'s. Input `[B, inputChannels, H, W]`.
    public static func resNet18(classes: Int = 10, inputChannels: Int = 3, imageSize: Int = 32,
                                widthMultiplier: Double = 1, seed: UInt64, threads: Int = 1) -> Classifier {
        let widths = [64, 128, 256, 512].map { max(1, Int((Double($0) * widthMultiplier).rounded())) }
        return make(name: "resnet18", classes: classes, inputChannels: inputChannels, imageSize: imageSize,
                    stemWidth: widths[0], stages: zip(widths, [1, 2, 2, 2]).map { ($0, $1, 2) },
                    normalization: .batch, seed: seed, threads: threads)
    }

    /// He et al.'s CIFAR ResNet of depth 6n + 2 (8, 14, 20, …): stem to `baseWidth` channels, three
    /// stages of n blocks at 1×, 2×, 4× `baseWidth` (strides 1, 2, 2), with 1×1 convolution
    /// shortcuts where the shape changes. Fits 28×28 (Fashion-MNIST) and 32×32 inputs. With group
    /// normalization the model is named `resnet<depth>-gn`.
    public static func small(depth: Int = 8, classes: Int = 10, inputChannels: Int = 1, imageSize: Int = 28,
                             baseWidth: Int = 16, normalization: Normalization = .batch, seed: UInt64,
                             threads: Int = 1) throws -> Classifier {
        guard depth >= 8, (depth - 2) % 6 == 0 else {
            throw NeuralNetworkError.invalidConfiguration("ResNet depth \(depth) is not 6n + 2 with n ≥ 1 (8, 14, 20, …)")
        }
        let n = (depth - 2) / 6
        return make(name: "resnet\(depth)" + (normalization == .group ? "-gn" : ""), classes: classes,
                    inputChannels: inputChannels, imageSize: imageSize, stemWidth: baseWidth,
                    stages: [(baseWidth, 1, n), (2 * baseWidth, 2, n), (4 * baseWidth, 2, n)],
                    normalization: normalization, seed: seed, threads: threads)
    }

    static func make(name: String, classes: Int, inputChannels: Int, imageSize: Int, stemWidth: Int,
                     stages: [(width: Int, stride: Int, blocks: Int)], normalization: Normalization, seed: UInt64,
                     threads: Int) -> Classifier {
        var initializer = ParameterInitializer(seed: seed)
        let workspace = ConvolutionWorkspace()
        let stem = Conv2d(name: "conv1", inChannels: inputChannels, outChannels: stemWidth, kernelSize: 3, stride: 1,
                          padding: 1, initializer: &initializer, workspace: workspace, threads: threads)
        stem.computesInputGradient = false
        var layers: [Layer] = [BatchChannelTranspose(name: "input"), stem,
                               normalization.layer(name: "bn1", channels: stemWidth, appliesReLU: true, threads: threads)]
        var channels = stemWidth
        for (s, stage) in stages.enumerated() {
            for b in 0..<stage.blocks {
                layers.append(BasicBlock(name: "layer\(s + 1).\(b)", inChannels: channels, outChannels: stage.width,
                                         stride: b == 0 ? stage.stride : 1, normalization: normalization,
                                         initializer: &initializer, workspace: workspace, threads: threads))
                channels = stage.width
            }
        }
        layers.append(GlobalAveragePool(name: "avgpool"))
        layers.append(Linear(name: "linear", inFeatures: channels, outFeatures: classes, initializer: &initializer))
        return Classifier(name: name, inputShape: [inputChannels, imageSize, imageSize], classes: classes,
                          body: Sequential(layers))
    }
}
