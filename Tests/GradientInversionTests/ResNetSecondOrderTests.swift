import Testing
import LinearAlgebra
import NeuralNetworks
@testable import GradientInversion

/// The layers ResNet-8 adds — batch norm with batch statistics, residual blocks, bias-free and
/// strided convolutions, global average pooling — against central differences of their first-order
/// passes (`LayerSecondOrderTests.check`: input, parameters and output gradient perturbed together
/// by ε = 1e-2).
@Suite struct ResNetLayerSecondOrderTests {
    /// Batch norm is curved (through 1/σ), so the central difference is exact only to O(ε²): with
    /// N(0, 1) inputs σ ≈ 1 and the error is about ε² = 1e-4 of the entries; the tolerance is 2e-3
    /// of the largest. Shapes include a batch of one (statistics over one image's map) and
    /// batches of 2 and 3 (statistics mixing the examples), all with γ, β away from 1, 0.
    @Test func batchNormalizationLayer() {
        for (seed, (c, h, w, b)) in [(2, 3, 4, 1), (3, 2, 2, 3), (1, 5, 1, 2)].enumerated() {
            let layer = BatchNormalizationLayer(gamma: random(c, seed: 1400 + UInt64(seed)), beta: random(c, seed: 1450 + UInt64(seed)),
                                                channels: c, height: h, width: w)
            LayerSecondOrderTests.check(layer, batch: b, seed: 1500 + UInt64(seed) * 20, input: random(b * c * h * w, seed: 1490 + UInt64(seed)),
                                        tolerance: 2e-3)
        }
    }

    /// The batch statistics are part of the function: the output sums to β per channel, so for
    /// any input tangent the tangent of the output sums to 0 per channel (with no γ̇, β̇) — a
    /// tangent pass that held μ and σ fixed would return γ·s·ẋ, whose channel sums are not 0.
    @Test func batchNormTangentRespectsTheStatistics() {
        let (c, h, w, b) = (2, 3, 3, 2)
        let layer = BatchNormalizationLayer(gamma: [1.5, -0.7], beta: [0.2, 0.4], channels: c, height: h, width: w)
        _ = layer.forward(random(b * c * h * w, seed: 1600), batch: b)
        _ = layer.backward(random(b * c * h * w, seed: 1601))
        let yDot = layer.tangentForward(random(b * c * h * w, seed: 1602))
        let plane = h * w
        for channel in 0..<c {
            let sum = (0..<b).reduce(Float(0)) { total, e in total + yDot[((e * c + channel) * plane)..<((e * c + channel + 1) * plane)].reduce(0, +) }
            #expect(abs(sum) < 1e-4)
        }
    }

    @Test func convolutionWithoutBias() {
        let layer = ConvolutionLayer(weight: random(3 * 2 * 9, seed: 1700), bias: nil, inChannels: 2, outChannels: 3, kernel: 3, stride: 2,
                                     padding: 1, height: 6, width: 5)
        #expect(layer.parameterShapes == [[3, 2, 3, 3]])
        LayerSecondOrderTests.check(layer, batch: 2, seed: 1710)
    }

    @Test func globalAveragePoolingLayer() {
        LayerSecondOrderTests.check(GlobalAveragePoolingLayer(channels: 3, height: 2, width: 5), batch: 2, seed: 1800)
    }

    static func convolution(_ c: Int, _ o: Int, kernel: Int, stride: Int, extent: Int, seed: UInt64) -> ConvolutionLayer {
        ConvolutionLayer(weight: random(o * c * kernel * kernel, seed: seed, scale: 0.4), bias: nil, inChannels: c, outChannels: o,
                         kernel: kernel, stride: stride, padding: kernel / 2, height: extent, width: extent)
    }

    static func norm(_ c: Int, extent: Int, seed: UInt64) -> BatchNormalizationLayer {
        BatchNormalizationLayer(gamma: random(c, seed: seed), beta: random(c, seed: seed + 1), channels: c, height: extent, width: extent)
    }

    /// The blocks of ResNet-8 without their ReLUs (whose kinks the differences would cross):
    /// conv → BN → conv → BN plus the identity, and the downsampling block with its strided 1×1
    /// convolution and batch norm as shortcut. Parameters are set and perturbed through the block.
    @Test func residualBlockLayer() throws {
        let identity = try ResidualBlockLayer(
            main: [Self.convolution(2, 2, kernel: 3, stride: 1, extent: 4, seed: 1900), Self.norm(2, extent: 4, seed: 1901),
                   Self.convolution(2, 2, kernel: 3, stride: 1, extent: 4, seed: 1903), Self.norm(2, extent: 4, seed: 1904)],
            shortcut: [])
        #expect(identity.parameterShapes == [[2, 2, 3, 3], [2], [2], [2, 2, 3, 3], [2], [2]])
        LayerSecondOrderTests.check(identity, batch: 2, seed: 1910, tolerance: 2e-3)

        let downsampling = try ResidualBlockLayer(
            main: [Self.convolution(2, 3, kernel: 3, stride: 2, extent: 6, seed: 1920), Self.norm(3, extent: 3, seed: 1921),
                   Self.convolution(3, 3, kernel: 3, stride: 1, extent: 3, seed: 1923), Self.norm(3, extent: 3, seed: 1924)],
            shortcut: [Self.convolution(2, 3, kernel: 1, stride: 2, extent: 6, seed: 1926), Self.norm(3, extent: 3, seed: 1927)])
        #expect(downsampling.outputSize == 3 * 3 * 3 && downsampling.parameterShapes.count == 9)
        LayerSecondOrderTests.check(downsampling, batch: 2, seed: 1930, tolerance: 2e-3)
    }

    @Test func residualBlockRefusesPathsOfDifferentSizes() {
        #expect(throws: InversionError.self) {
            try ResidualBlockLayer(main: [Self.convolution(2, 3, kernel: 3, stride: 2, extent: 6, seed: 1940)], shortcut: [])
        }
    }
}

/// The attack's ResNet-8 is the training library's (`ResNet.small(depth: 8)`, batch norm),
/// mirrored with its parameters copied in.
@Suite struct ResNetGradientMapTests {
    /// The first-order parameter gradients equal the training library's (training mode, batch
    /// statistics) for the same input and parameters, on the full Fashion-MNIST-sized model
    /// (28×28, base width 16, 78k parameters), to 1e-4 of each tensor's largest entry: the two
    /// sum in different orders (SIMD lanes, oneDNN convolutions) through 8 layers of batch norm.
    @Test func gradientsMatchTheTrainingLibrary() throws {
        let resnet = try ResNet.small(depth: 8, classes: 10, inputChannels: 1, imageSize: 28, seed: 7)
        let net = try GradientMap(mirroring: resnet)
        #expect(net.layers.contains { $0 is ResidualBlockLayer } && net.layers.contains { $0 is BatchNormalizationLayer })
        #expect(net.parameterShapes == resnet.parameters.map(\.shape))
        let batch = 2
        let x = random(batch * net.inputSize, seed: 8)
        resnet.zeroGradients()
        let loss = try resnet.lossAndGradients(input: try Tensor(shape: [batch, 1, 28, 28], scalars: x), labels: [3, 8])
        let ours = net.gradients(input: x, batch: batch, labels: .hard([3, 8]))
        #expect(abs(ours.loss - loss) < 1e-5 * abs(loss))
        for (a, p) in zip(ours.gradients, resnet.parameters) { #expect(relativeError(a, p.gradient.scalars) < 1e-4, "\(p.name)") }
    }

    /// The stem convolution has no bias and batch norm follows it, so at batch size 1 the
    /// parameter gradient — all the observer sees — is the same for x and for 3x (up to batch
    /// norm's ε = 1e-5 against the variance): no attack can recover the image's contrast from it.
    @Test func batchOfOneGradientIgnoresTheInputsScale() throws {
        let net = try GradientMap(mirroring: try ResNet.small(depth: 8, classes: 10, inputChannels: 1, imageSize: 28, seed: 10))
        let x = random(net.inputSize, seed: 60)
        let g = net.gradients(input: x, batch: 1, labels: .hard([4])).gradients
        let scaled = net.gradients(input: x.map { 3 * $0 }, batch: 1, labels: .hard([4])).gradients
        for (a, b) in zip(scaled, g) { #expect(relativeError(a, b) < 1e-3) }
        let other = net.gradients(input: random(net.inputSize, seed: 61), batch: 1, labels: .hard([4])).gradients
        #expect(relativeError(other[0], g[0]) > 0.1)
    }

    /// The ReLU layers of a mirrored ResNet, those inside the residual blocks included.
    static func reluLayers(_ net: GradientMap) -> [ReLULayer] {
        net.layers.flatMap { layer -> [SecondOrderLayer] in (layer as? ResidualBlockLayer).map { $0.main + $0.shortcut } ?? [layer] }
            .compactMap { $0 as? ReLULayer }
    }

    /// The matching losses' derivatives in the input and in the soft labels' logits against central
    /// differences, with a batch of 2 so the batch statistics couple the examples. The gradient g
    /// jumps where a ReLU's input crosses 0, so the loss is discontinuous there and a difference
    /// across a kink says nothing: along u, ε is the largest 1e-2/2^k for which every ReLU's
    /// activity at x ± εu is the one at x (required ≥ 1e-6), and the losses are summed in double
    /// precision (the float sum of squares over 78k entries is too coarse at such ε). Tolerance
    /// 2 % of the directional derivative, as for the LeNets. The label logits do not move any
    /// ReLU; their difference uses ε = 1e-3. On the full Fashion-MNIST-sized model and on base
    /// width 2 with 8×8 inputs (the same architecture, 2×2 maps in the last stage: 8 values per
    /// batch-norm channel).
    @Test(arguments: [(28, 16), (8, 2)], [GradientDistance.squaredEuclidean, .cosine])
    func matchingLossDerivative(geometry: (size: Int, width: Int), distance: GradientDistance) throws {
        let net = try GradientMap(mirroring: try ResNet.small(depth: 8, classes: 10, inputChannels: 1, imageSize: geometry.size,
                                                              baseWidth: geometry.width, seed: 9))
        let relus = Self.reluLayers(net)
        #expect(relus.count == 7)
        let batch = 2
        let target = net.gradients(input: random(batch * net.inputSize, seed: 50), batch: batch, labels: .hard([2, 6])).gradients
        let observed = ObservedGradient(tensors: target)
        let x = random(batch * net.inputSize, seed: 51), lambda = random(batch * net.classes, seed: 52)
        let value = net.evaluate(input: x, batch: batch, labels: .soft(logits: lambda)) { distance.valueAndDirection($0, observed).direction }
        func loss(_ x: [Float], _ l: [Float]) -> Double {
            let g = net.gradients(input: x, batch: batch, labels: .soft(logits: l)).gradients
            guard distance == .squaredEuclidean else { return Double(distance.valueAndDirection(g, observed).value) }
            var sum: Double = 0
            for (a, b) in zip(g, target) { for (p, q) in zip(a, b) { sum += Double(p - q) * Double(p - q) } }
            return sum
        }
        func activity(_ x: [Float]) -> [Bool] {
            _ = net.gradients(input: x, batch: batch, labels: .soft(logits: lambda))
            return relus.flatMap(\.active)
        }
        let u = random(x.count, seed: 53), w = random(lambda.count, seed: 54)
        let reference = activity(x)
        var e: Float = 1e-2
        while e >= 1e-6, activity(axpy(x, e, u)) != reference || activity(axpy(x, -e, u)) != reference { e /= 2 }
        #expect(e >= 1e-6)
        let alongU = (loss(axpy(x, e, u), lambda) - loss(axpy(x, -e, u), lambda)) / Double(2 * e)
        let el: Float = 1e-3
        let alongW = (loss(x, axpy(lambda, el, w)) - loss(x, axpy(lambda, -el, w))) / Double(2 * el)
        #expect(abs(alongU) > 1e-3 && abs(alongW) > 1e-3)
        #expect(abs(dot(value.inputDerivative, u) - alongU) < 2e-2 * abs(alongU), "\(distance), ε \(e): \(dot(value.inputDerivative, u)) vs \(alongU)")
        #expect(abs(dot(value.labelLogitDerivative!, w) - alongW) < 2e-2 * abs(alongW))
    }
}
