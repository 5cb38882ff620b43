import Testing
import LinearAlgebra
@testable import NeuralNetworks

@Suite struct LayerGradientTests {
    let checker = GradientCheck()

    func expectSmall(_ results: [(String, Double)], _ what: String) {
        #expect(!results.isEmpty)
        for (name, error) in results {
            #expect(error < checker.tolerance, "\(what): gradient of \(name) has relative error \(error)")
        }
    }

    @Test func linear() throws {
        var initializer = ParameterInitializer(seed: 1)
        let layer = Linear(name: "fc", inFeatures: 7, outFeatures: 5, initializer: &initializer)
        expectSmall(try checker.check(layer: layer, input: normalTensor([6, 7], seed: 2, stream: 77)), "Linear")
    }

    @Test(arguments: ConvolutionImplementation.allCases,
          [(3, 1, 1, false), (3, 2, 1, true), (1, 2, 0, false), (1, 1, 0, true), (2, 1, 0, false)])
    func conv2d(implementation: ConvolutionImplementation, geometry: (kernel: Int, stride: Int, padding: Int, bias: Bool)) throws {
        var initializer = ParameterInitializer(seed: 3)
        // A tiny workspace forces several im2col blocks per batch.
        let layer = Conv2d(name: "conv", inChannels: 3, outChannels: 4, kernelSize: geometry.kernel, stride: geometry.stride,
                           padding: geometry.padding, bias: geometry.bias, initializer: &initializer,
                           workspace: ConvolutionWorkspace(limit: 100))
        layer.implementation = implementation
        expectSmall(try checker.check(layer: layer, input: normalTensor([3, 3, 5, 6], seed: 4, stream: 77)),
                    "Conv2d \(implementation) k\(geometry.kernel) s\(geometry.stride)")
    }

    @Test(arguments: ConvolutionImplementation.allCases)
    func conv2dMatchesDirectConvolution(implementation: ConvolutionImplementation) throws {
        var initializer = ParameterInitializer(seed: 8)
        let (c, o, b, h, w, k, s, p) = (3, 5, 2, 7, 6, 3, 2, 1)
        for threads in [1, 2] {
            let layer = Conv2d(name: "conv", inChannels: c, outChannels: o, kernelSize: k, stride: s, padding: p, bias: true,
                               initializer: &initializer, workspace: ConvolutionWorkspace(limit: 64), threads: threads)
            layer.implementation = implementation
            let x = normalTensor([c, b, h, w], seed: 9, stream: 77)
            let y = try layer.forward(x, training: false)
            let ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1
            #expect(y.shape == [o, b, ho, wo])
            var worst = 0.0
            for oc in 0..<o { for bi in 0..<b { for oy in 0..<ho { for ox in 0..<wo {
                var sum = Double(layer.bias!.value.scalars[oc])
                for ic in 0..<c { for ky in 0..<k { for kx in 0..<k {
                    let iy = oy * s - p + ky, ix = ox * s - p + kx
                    if iy >= 0, iy < h, ix >= 0, ix < w {
                        sum += Double(layer.weight.value.scalars[((oc * c + ic) * k + ky) * k + kx])
                            * Double(x.scalars[((ic * b + bi) * h + iy) * w + ix])
                    }
                } } }
                worst = max(worst, abs(sum - Double(y.scalars[((oc * b + bi) * ho + oy) * wo + ox])))
            } } } }
            #expect(worst < 1e-5, "conv output differs from the direct sum by \(worst)")
        }
    }

    @Test func batchNormTraining() throws {
        let layer = BatchNorm2d(name: "bn", channels: 3)
        layer.weight.value = normalTensor([3], seed: 10, stream: 77)
        layer.bias.value = normalTensor([3], seed: 11, stream: 77)
        expectSmall(try checker.check(layer: layer, input: normalTensor([3, 4, 3, 3], seed: 12, stream: 77)), "BatchNorm2d train")
        // With the ReLU fused: equal to BatchNorm2d followed by ReLU, and the same gradients.
        let fused = BatchNorm2d(name: "bn", channels: 3, appliesReLU: true)
        fused.weight.value = layer.weight.value
        fused.bias.value = layer.bias.value
        let x = normalTensor([3, 4, 3, 3], seed: 12, stream: 77)
        #expect(try fused.forward(x, training: true) == ReLU.apply(try layer.forward(x, training: true)))
        expectSmall(try checker.check(layer: fused, input: x), "BatchNorm2d + ReLU")
    }

    @Test func batchNormEvaluationBackward() throws {
        let layer = BatchNorm2d(name: "bn", channels: 2)
        layer.runningMean.value = normalTensor([2], seed: 13, stream: 77)
        layer.runningVariance.value = try Tensor(shape: [2], scalars: [0.5, 2])
        let x = normalTensor([2, 3, 2, 2], seed: 14, stream: 77)
        let y = try layer.forward(x, training: false)
        let r = normalTensor(y.shape, seed: 15, stream: 77)
        for p in layer.parameters { p.zeroGradient() }
        let dx = try layer.backward(r)
        let results = checker.check(inputs: x, parameters: layer.parameters, analyticInput: dx) { x in
            projection(try! layer.forward(x, training: false), r)
        }
        expectSmall(results, "BatchNorm2d eval")
    }

    @Test func relu() throws {
        expectSmall(try checker.check(layer: ReLU(), input: awayFromZero([3, 2, 4, 4], seed: 16)), "ReLU")
    }

    /// Distinct values 0.1 apart, so ±eps never changes which element is a window's maximum.
    func spacedValues(_ shape: [Int]) -> Tensor {
        let n = Tensor.elementCount(shape)
        return Tensor(shape: shape) { i in Float((i * 37) % n) * 0.1 - Float(n) * 0.05 }
    }

    @Test func maxPool() throws {
        expectSmall(try checker.check(layer: MaxPool2d(kernelSize: 2), input: spacedValues([2, 3, 4, 6])), "MaxPool2d")
        expectSmall(try checker.check(layer: MaxPool2d(kernelSize: 3, stride: 2), input: spacedValues([2, 2, 7, 5])),
                    "MaxPool2d k3 s2")
    }

    @Test func avgPool() throws {
        expectSmall(try checker.check(layer: AvgPool2d(kernelSize: 2), input: normalTensor([2, 3, 4, 6], seed: 17, stream: 77)), "AvgPool2d")
        expectSmall(try checker.check(layer: GlobalAveragePool(), input: normalTensor([4, 3, 3, 5], seed: 18, stream: 77)), "GlobalAveragePool")
    }

    @Test func flattenAndTranspose() throws {
        expectSmall(try checker.check(layer: Flatten(), input: normalTensor([3, 2, 4], seed: 19, stream: 77)), "Flatten")
        expectSmall(try checker.check(layer: BatchChannelTranspose(), input: normalTensor([3, 2, 4, 2], seed: 20, stream: 77)), "Transpose")
        let x = normalTensor([2, 3, 2, 2], seed: 21, stream: 77)
        let t = BatchChannelTranspose()
        #expect(try t.forward(t.forward(x, training: false), training: false) == x)
    }

    @Test func dropoutMasksAndScales() throws {
        let layer = try Dropout(probability: 0.25, seed: 3)
        let x = Tensor(shape: [4000], repeating: 1)
        let y = try layer.forward(x, training: true)
        let kept = y.scalars.filter { $0 != 0 }
        #expect(kept.allSatisfy { $0 == 1 / 0.75 })
        // Keep count ~ Binomial(4000, 0.75): mean 3000, sd 27.4; ±6 sd.
        #expect(abs(kept.count - 3000) < 165)
        let dy = normalTensor([4000], seed: 22, stream: 77)
        let dx = try layer.backward(dy)
        for i in 0..<4000 { #expect(dx.scalars[i] == dy.scalars[i] * y.scalars[i]) }
        #expect(try layer.forward(x, training: false) == x)
        #expect(throws: NeuralNetworkError.self) { try Dropout(probability: 1, seed: 0) }
    }

    @Test func embedding() throws {
        var initializer = ParameterInitializer(seed: 23)
        let layer = Embedding(name: "encoder", vocabularySize: 6, embeddingSize: 4,
                              initialValue: initializer.normal(shape: [6, 4]))
        let ids = [1, 4, 1, 0, 5]
        let y = try layer.forward(ids: ids, training: true)
        let r = normalTensor(y.shape, seed: 24, stream: 77)
        layer.weight.zeroGradient()
        try layer.backward(r)
        let results = checker.check(inputs: Tensor(shape: [1]), parameters: layer.parameters, analyticInput: nil) { _ in
            projection(try! layer.forward(ids: ids, training: true), r)
        }
        expectSmall(results, "Embedding")
        #expect(throws: NeuralNetworkError.indexOutOfRange(layer: "encoder", index: 6, limit: 6)) {
            try layer.forward(ids: [6], training: false)
        }
    }

    @Test func lstm() throws {
        var initializer = ParameterInitializer(seed: 25)
        let lstm = try LSTM(name: "rnn", inputSize: 3, hiddenSize: 5, layers: 2, initializer: &initializer)
        let x = normalTensor([4, 2, 3], seed: 26, stream: 77)
        lstm.resetState()
        let y = try lstm.forward(x, training: true)
        let r = normalTensor(y.shape, seed: 27, stream: 77)
        for p in lstm.parameters { p.zeroGradient() }
        let dx = try lstm.backward(r)
        let results = checker.check(inputs: x, parameters: lstm.parameters, analyticInput: dx) { x in
            lstm.resetState()
            return projection(try! lstm.forward(x, training: true), r)
        }
        #expect(results.count == 9)
        expectSmall(results, "LSTM")
    }

    @Test func softmaxCrossEntropy() throws {
        let logits = normalTensor([5, 7], seed: 28, stream: 77, standardDeviation: 2)
        let labels = [0, 6, 3, 3, 1]
        let (_, gradient) = try SoftmaxCrossEntropy.lossAndGradient(logits: logits, labels: labels)
        let results = checker.check(inputs: logits, parameters: [], analyticInput: gradient) { z in
            Double(try! SoftmaxCrossEntropy.loss(logits: z, labels: labels))
        }
        expectSmall(results, "softmax cross-entropy")
        // Rows split over two threads give the same bits.
        let wide = normalTensor([37, 300], seed: 29, stream: 77, standardDeviation: 3)
        let wideLabels = (0..<37).map { ($0 * 11) % 300 }
        let one = try SoftmaxCrossEntropy.lossAndGradient(logits: wide, labels: wideLabels, threads: 1)
        let two = try SoftmaxCrossEntropy.lossAndGradient(logits: wide, labels: wideLabels, threads: 2)
        #expect(one.loss.bitPattern == two.loss.bitPattern && one.gradient == two.gradient)
        // Stability: huge logits give the exact loss of the shifted problem, not inf/NaN.
        let big = try Tensor(shape: [1, 3], scalars: [1000, 1001, 999])
        let small = try Tensor(shape: [1, 3], scalars: [1, 2, 0])
        let l1 = try SoftmaxCrossEntropy.loss(logits: big, labels: [2]), l2 = try SoftmaxCrossEntropy.loss(logits: small, labels: [2])
        #expect(l1.isFinite && abs(l1 - l2) < 1e-5)
        // log(1 + e + e⁻¹·…): loss of label 2 for logits (1, 2, 0) is log(e + e² + 1) − 0.
        #expect(abs(Double(l2) - log(exp(1.0) + exp(2.0) + 1)) < 1e-5)
        #expect(throws: NeuralNetworkError.self) { try SoftmaxCrossEntropy.loss(logits: small, labels: [3]) }
    }

    @Test func fastElementaryFunctionsAccuracy() {
        var worstExp = 0.0, worstTanh = 0.0, worstSigmoid = 0.0
        var x: Float = -80
        while x < 80 {
            let exact = referenceExp(Double(x))
            worstExp = max(worstExp, abs(Double(FastMath.exp(x)) - exact) / exact)
            if abs(x) < 20 {
                worstTanh = max(worstTanh, abs(Double(FastMath.tanh(x)) - referenceTanh(Double(x))))
                worstSigmoid = max(worstSigmoid, abs(Double(FastMath.sigmoid(x)) - 1 / (1 + referenceExp(-Double(x)))))
            }
            x += 0.000_713
        }
        #expect(worstExp < 5e-7, "FastMath.exp relative error \(worstExp)")
        #expect(worstTanh < 5e-7 && worstSigmoid < 5e-7, "tanh \(worstTanh), sigmoid \(worstSigmoid) absolute error")
        #expect(FastMath.tanh(30) == 1 && FastMath.tanh(-30) == -1 && FastMath.exp(-200) < 1e-37)
    }
}

#if canImport(Glibc)
import Glibc
import TestSupport
#endif
func referenceExp(_ x: Double) -> Double { exp(x) }
func referenceTanh(_ x: Double) -> Double { tanh(x) }
