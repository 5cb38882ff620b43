import Testing
import LinearAlgebra
import TestSupport
@testable import NeuralNetworks

/// Per-example gradients for DP-SGD (`PerExampleGradients`): the efficient path (recorded
/// activations and output gradients of the linear layers) against one backward per example.
@Suite struct PerExampleGradientTests {
    static func mlp() -> Classifier { MLP.make(inputShape: [1, 5, 5], hidden: [12, 7], classes: 4, seed: 21) }

    static func gradients(_ model: Classifier) -> [[Float]] { model.parameters.map(\.gradient.scalars) }

    static func relativeDistance(_ a: [[Float]], _ b: [[Float]]) -> Double {
        var d = 0.0, n = 0.0
        for (x, y) in zip(a.joined(), b.joined()) { d += Double(x - y) * Double(x - y); n += Double(y) * Double(y) }
        return (d / max(n, 1e-30)).squareRoot()
    }

    /// Without clipping (C huge), the efficient clipped sum is Σ_j ∇ℓ_j, which must equal the sum of
    /// single-example backward passes and n × the batch's mean-loss gradient; the per-example norms
    /// must equal the single-example gradients' norms. Tolerance 1e-5 relative (float32 sums in
    /// another order). Covers every layer type the MLP uses: flatten, linear (weight and bias), ReLU.
    @Test func efficientSumAndNormsEqualSingleExampleBackwardPasses() throws {
        let model = Self.mlp()
        let input = normalTensor([6, 1, 5, 5], seed: 4, stream: 77)
        let labels = [0, 3, 1, 2, 2, 0]
        let efficient = try PerExampleGradients.clippedSum(model, input: input, labels: labels, clip: 1e9, perLayer: false,
                                                           method: .efficient)
        let sumEfficient = Self.gradients(model)
        let singles = try Self.singleExampleBackwardPasses(model, input: input, labels: labels)
        #expect(Self.relativeDistance(sumEfficient, singles.sum) < 1e-5)
        for (a, b) in zip(efficient.norms, singles.norms) { #expect(abs(Double(a) - b) < 1e-5 * b, "norm \(a) vs \(b)") }
        model.zeroGradients()
        _ = try model.lossAndGradients(input: input, labels: labels)
        let batch = Self.gradients(model).map { $0.map { $0 * 6 } }
        #expect(Self.relativeDistance(sumEfficient, batch) < 1e-5)
        #expect(abs(efficient.loss - (try model.evaluate(input: input, labels: labels).loss)) < 1e-5)
    }

    /// With clipping active (C below every norm), flat and per-layer, the efficient path equals the
    /// one-backward-per-example reference to 1e-5 relative.
    @Test(arguments: [false, true])
    func efficientClippedSumEqualsThePerExampleLoop(perLayer: Bool) throws {
        let model = Self.mlp()
        let input = normalTensor([7, 1, 5, 5], seed: 8, stream: 77)
        let labels = [1, 0, 3, 3, 2, 1, 0]
        let a = try PerExampleGradients.clippedSum(model, input: input, labels: labels, clip: 0.05, perLayer: perLayer, method: .efficient)
        let fast = Self.gradients(model)
        let b = try PerExampleGradients.clippedSum(model, input: input, labels: labels, clip: 0.05, perLayer: perLayer,
                                                   method: .oneBackwardPerExample)
        let slow = Self.gradients(model)
        #expect(a.norms.allSatisfy { $0 > 0.05 }, "the test needs clipping to act on every example")
        #expect(Self.relativeDistance(fast, slow) < 1e-5)
        for (x, y) in zip(a.norms, b.norms) { #expect(abs(x - y) < 1e-5 * y) }
    }

    /// Every example's clipped gradient has norm ≤ C (flat: the whole gradient; per-layer: each of
    /// the P tensors ≤ C/√P, so the whole ≤ C), measured on single-example lots; and clipping keeps
    /// the direction (the clipped gradient is a positive multiple of the raw one).
    @Test(arguments: [false, true])
    func everyClippedExampleGradientIsWithinTheClipNorm(perLayer: Bool) throws {
        let model = Self.mlp()
        let clip: Float = 0.3
        for j in 0..<8 {
            let one = normalTensor([1, 1, 5, 5], seed: 100 + UInt64(j), stream: 77, standardDeviation: 3)
            let result = try PerExampleGradients.clippedSum(model, input: one, labels: [j % 4], clip: clip, perLayer: perLayer)
            let clipped = Self.gradients(model)
            let norm = clipped.joined().reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            #expect(norm <= Double(clip) * (1 + 1e-5), "example \(j): \(norm) > \(clip)")
            if perLayer {
                let each = Double(clip) / Double(clipped.count).squareRoot()
                for t in clipped { #expect(t.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() <= each * (1 + 1e-5)) }
            } else if result.norms[0] > clip {
                #expect(abs(norm - Double(clip)) < 1e-4, "a clipped gradient has norm C")
            }
        }
    }

    /// A small convolutional classifier with every layer the efficient path handles: convolutions
    /// 3×3 (with bias, padded), strided and 1×1, group norm with and without the fused ReLU, pooling, linear.
    static func convolutional() throws -> Classifier {
        var initializer = ParameterInitializer(seed: 23)
        let workspace = ConvolutionWorkspace(limit: 300)  // several im2col blocks per batch
        let layers: [Layer] = [
            BatchChannelTranspose(name: "input"),
            Conv2d(name: "c1", inChannels: 2, outChannels: 4, kernelSize: 3, padding: 1, bias: true, initializer: &initializer,
                   workspace: workspace),
            try GroupNorm(name: "g1", groups: 2, channels: 4, appliesReLU: true),
            Conv2d(name: "c2", inChannels: 4, outChannels: 6, kernelSize: 3, stride: 2, padding: 1, initializer: &initializer,
                   workspace: workspace),
            try GroupNorm(name: "g2", groups: 3, channels: 6),
            Conv2d(name: "c3", inChannels: 6, outChannels: 5, kernelSize: 1, bias: true, initializer: &initializer, workspace: workspace),
            ReLU(name: "r"),
            GlobalAveragePool(name: "pool"),
            Linear(name: "head", inFeatures: 5, outFeatures: 3, initializer: &initializer),
        ]
        return Classifier(name: "cnn", inputShape: [2, 6, 6], classes: 3, body: Sequential(layers))
    }

    static func groupNormResNet() throws -> Classifier {
        try ResNet.small(depth: 8, classes: 3, inputChannels: 1, imageSize: 8, baseWidth: 4, normalization: .group, seed: 2)
    }

    /// The single-example backward passes of `input`'s examples: their gradients' sum and norms.
    static func singleExampleBackwardPasses(_ model: Classifier, input: Tensor, labels: [Int]) throws -> (sum: [[Float]], norms: [Double]) {
        let size = input.count / labels.count
        var sum = model.parameters.map { [Float](repeating: 0, count: $0.value.count) }
        var norms: [Double] = []
        for j in labels.indices {
            let one = try Tensor(shape: [1] + Array(input.shape.dropFirst()), scalars: Array(input.scalars[(j * size)..<((j + 1) * size)]))
            model.zeroGradients()
            _ = try model.lossAndGradients(input: one, labels: [labels[j]])
            var squared = 0.0
            for (k, p) in model.parameters.enumerated() {
                for (i, g) in p.gradient.scalars.enumerated() { sum[k][i] += g; squared += Double(g) * Double(g) }
            }
            norms.append(squared.squareRoot())
        }
        return (sum, norms)
    }

    /// Convolutions and group norm: without clipping, the one-pass clipped sum equals the sum of
    /// single-example backward passes and the norms theirs, to 1e-5 relative (float32 sums in
    /// another order over ≤ 10³ terms). A reducer that returned zeros, or per-example gradients
    /// of the wrong example, fails this.
    @Test(arguments: ["cnn", "resnet8-gn"])
    func convolutionAndGroupNormGradientsEqualSingleExampleBackwardPasses(model name: String) throws {
        let model = name == "cnn" ? try Self.convolutional() : try Self.groupNormResNet()
        #expect(PerExampleGradients.unsupportedReason(model) == nil)
        #expect(PerExampleGradients.method(for: model) == .efficient)
        let labels = [0, 2, 1, 1, 0]
        let input = normalTensor([labels.count] + model.inputShape, seed: 9, stream: 77)
        let result = try PerExampleGradients.clippedSum(model, input: input, labels: labels, clip: 1e9, perLayer: false, method: .efficient)
        let efficient = Self.gradients(model)
        let reference = try Self.singleExampleBackwardPasses(model, input: input, labels: labels)
        #expect(Self.relativeDistance(efficient, reference.sum) < 1e-5, "\(Self.relativeDistance(efficient, reference.sum))")
        for (a, b) in zip(result.norms, reference.norms) { #expect(abs(Double(a) - b) < 1e-5 * b, "norm \(a) vs \(b)") }
        #expect(Set(result.norms).count == labels.count, "distinct examples have distinct norms")
    }

    /// With clipping active on every example, flat and per-layer, the one-pass path equals the
    /// one-backward-per-example reference to 1e-5 relative on the group-norm ResNet.
    @Test(arguments: [false, true])
    func groupNormResNetClippedSumEqualsThePerExampleLoop(perLayer: Bool) throws {
        let model = try Self.groupNormResNet()
        let labels = [2, 0, 1, 0]
        let input = normalTensor([labels.count] + model.inputShape, seed: 10, stream: 77)
        let a = try PerExampleGradients.clippedSum(model, input: input, labels: labels, clip: 0.01, perLayer: perLayer, method: .efficient)
        let fast = Self.gradients(model)
        let b = try PerExampleGradients.clippedSum(model, input: input, labels: labels, clip: 0.01, perLayer: perLayer,
                                                   method: .oneBackwardPerExample)
        #expect(a.norms.allSatisfy { $0 > 0.01 }, "the test needs clipping to act on every example")
        #expect(Self.relativeDistance(fast, Self.gradients(model)) < 1e-5)
        for (x, y) in zip(a.norms, b.norms) { #expect(abs(x - y) < 1e-5 * y) }
    }

    /// Batch norm mixes the examples of a batch: a ResNet is refused, naming the layer and the
    /// group-norm variant.
    @Test func batchNormModelsAreRefused() throws {
        let model = try ResNet.small(depth: 8, classes: 3, inputChannels: 1, imageSize: 8, baseWidth: 4, seed: 1)
        let reason = PerExampleGradients.unsupportedReason(model)
        #expect(reason?.contains("batch normalization") == true)
        #expect(reason?.contains("resnet8-gn") == true)
        #expect(throws: NeuralNetworkError.self) {
            try PerExampleGradients.clippedSum(model, input: normalTensor([2, 1, 8, 8], seed: 1, stream: 77), labels: [0, 1], clip: 1, perLayer: false)
        }
    }
}
