import Testing
import LinearAlgebra
@testable import NeuralNetworks
import TestSupport

@Suite struct BatchNormStatisticsTests {
    @Test func runningStatisticsFollowPyTorchsFormula() throws {
        let bn = BatchNorm2d(name: "bn", channels: 2)
        let x1 = normalTensor([2, 3, 2, 2], seed: 40, stream: 77, standardDeviation: 2), x2 = normalTensor([2, 3, 2, 2], seed: 41, stream: 77)
        _ = try bn.forward(x1, training: true)
        _ = try bn.forward(x2, training: true)
        let n = 12
        for c in 0..<2 {
            var mean = 0.0, variance = 1.0
            for x in [x1, x2] {
                let v = x.scalars[(c * n)..<((c + 1) * n)].map(Double.init)
                let mu = v.reduce(0, +) / Double(n)
                let unbiased = v.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / Double(n - 1)
                mean = 0.9 * mean + 0.1 * mu
                variance = 0.9 * variance + 0.1 * unbiased
            }
            #expect(abs(Double(bn.runningMean.value.scalars[c]) - mean) < 1e-6)
            #expect(abs(Double(bn.runningVariance.value.scalars[c]) - variance) < 1e-5)
        }
    }

    @Test func trainingNormalizesWithBatchStatisticsEvaluationWithRunningOnes() throws {
        let bn = BatchNorm2d(name: "bn", channels: 1)
        bn.weight.value = Tensor(shape: [1], repeating: 2)
        bn.bias.value = Tensor(shape: [1], repeating: 0.5)
        let x = try Tensor(shape: [1, 4, 1, 1], scalars: [1, 2, 3, 6])
        let y = try bn.forward(x, training: true)
        // Batch mean 3, biased variance (4 + 1 + 0 + 9)/4 = 3.5.
        for i in 0..<4 {
            let expected = 2 * (Double(x.scalars[i]) - 3) / (3.5 + 1e-5).squareRoot() + 0.5
            #expect(abs(Double(y.scalars[i]) - expected) < 1e-5)
        }
        // Running: mean 0.3, variance 0.9 + 0.1·14/3.
        let z = try bn.forward(x, training: false)
        let rv = 0.9 + 0.1 * 14.0 / 3
        for i in 0..<4 {
            let expected = 2 * (Double(x.scalars[i]) - 0.3) / (rv + 1e-5).squareRoot() + 0.5
            #expect(abs(Double(z.scalars[i]) - expected) < 1e-5)
        }
        // Evaluation does not touch the running statistics.
        #expect(abs(bn.runningMean.value.scalars[0] - 0.3) < 1e-6)
    }
}

@Suite struct OptimizerTests {
    func parameter(_ values: [Float], bias: Bool = false) throws -> Parameter {
        Parameter(name: "p", value: try Tensor(shape: [values.count], scalars: values), isNormalizationOrBias: bias)
    }

    @Test func nesterovMomentumWithWeightDecayMatchesPyTorch() throws {
        let w = try parameter([1, -2]), b = try parameter([0.5], bias: true)
        let sgd = SGD(options: .init(momentum: 0.9, nesterov: true, weightDecay: 0.1,
                                     weightDecayExcludesNormalizationAndBias: true),
                      schedule: .constant(0.5))
        // Step 1: d = g + wd·x; m = d; x −= lr·(d + μ·m).
        w.gradient = try Tensor(shape: [2], scalars: [0.2, 0.4])
        b.gradient = try Tensor(shape: [1], scalars: [1])
        sgd.apply(to: [w, b])
        var d: [Double] = [0.2 + 0.1 * 1, 0.4 + 0.1 * -2]
        var m = d
        var x: [Double] = [1 - 0.5 * (d[0] + 0.9 * m[0]), -2 - 0.5 * (d[1] + 0.9 * m[1])]
        #expect(abs(Double(w.value.scalars[0]) - x[0]) < 1e-6 && abs(Double(w.value.scalars[1]) - x[1]) < 1e-6)
        #expect(abs(Double(b.value.scalars[0]) - (0.5 - 0.5 * (1 + 0.9 * 1))) < 1e-6)  // no decay on the bias
        // Step 2 with the same gradient.
        sgd.apply(to: [w, b])
        d = [0.2 + 0.1 * x[0], 0.4 + 0.1 * x[1]]
        m = [0.9 * m[0] + d[0], 0.9 * m[1] + d[1]]
        x = [x[0] - 0.5 * (d[0] + 0.9 * m[0]), x[1] - 0.5 * (d[1] + 0.9 * m[1])]
        #expect(abs(Double(w.value.scalars[0]) - x[0]) < 1e-6 && abs(Double(w.value.scalars[1]) - x[1]) < 1e-6)
    }

    /// Both Nesterov forms over three steps with changing gradients, against the recurrences
    /// written out by hand: m ← μm + d, then x −= γ(d + μm) (PyTorch) or x −= γ(d + m) (paper code).
    @Test(arguments: SGD.NesterovForm.allCases)
    func nesterovFormsFollowTheirRecurrences(form: SGD.NesterovForm) throws {
        let w = try parameter([1, -2])
        let sgd = SGD(options: .init(momentum: 0.9, nesterov: true, nesterovForm: form, weightDecay: 0.1),
                      schedule: .constant(0.5))
        let gradients: [[Double]] = [[0.2, 0.4], [-0.3, 0.1], [0.05, -0.6]]
        var x: [Double] = [1, -2], m: [Double] = [0, 0]
        for g in gradients {
            w.gradient = try Tensor(shape: [2], scalars: g.map(Float.init))
            sgd.apply(to: [w])
            for i in 0..<2 {
                let d = g[i] + 0.1 * x[i]
                m[i] = 0.9 * m[i] + d
                x[i] -= 0.5 * (d + (form == .pytorch ? 0.9 : 1) * m[i])
                #expect(abs(Double(w.value.scalars[i]) - x[i]) < 1e-5, "\(form) element \(i): \(w.value.scalars[i]) vs \(x[i])")
            }
        }
    }

    @Test func theTwoNesterovFormsTakeDifferentSteps() throws {
        func first(_ form: SGD.NesterovForm) throws -> Float {
            let w = try parameter([0])
            w.gradient = try Tensor(shape: [1], scalars: [1])
            SGD(options: .init(momentum: 0.9, nesterovForm: form), schedule: .constant(1)).apply(to: [w])
            return w.value.scalars[0]
        }
        // First step m = d = 1: PyTorch moves by 1 + 0.9, the paper's code by 1 + 1.
        #expect(abs(try first(.pytorch) + 1.9) < 1e-6)
        #expect(abs(try first(.paperCode) + 2) < 1e-6)
    }

    @Test func heavyBallAndClipping() throws {
        let w = try parameter([0, 0])
        w.gradient = try Tensor(shape: [2], scalars: [3, 4])  // norm 5
        let sgd = SGD(options: .init(momentum: 0.5, nesterov: false, maxGradientNorm: 1), schedule: .constant(1))
        let norm = sgd.apply(to: [w])
        #expect(norm == 5)
        // Clipped to norm 1: (0.6, 0.8); heavy ball first step m = d.
        #expect(abs(w.value.scalars[0] + 0.6) < 1e-6 && abs(w.value.scalars[1] + 0.8) < 1e-6)
        sgd.apply(to: [w])
        // m = 0.5·d + d = 1.5·d.
        #expect(abs(w.value.scalars[0] + 0.6 * 2.5) < 1e-5 && abs(w.value.scalars[1] + 0.8 * 2.5) < 1e-5)
    }

    @Test func learningRateSchedules() {
        let warm = LearningRateSchedule(base: 0.4, warmupSteps: 4, warmupStartFactor: 0.25,
                                        decay: .step(milestones: [10, 20], factor: 0.1))
        #expect(warm.rate(at: 0) == 0.1)
        #expect(abs(warm.rate(at: 2) - 0.25) < 1e-7)
        #expect(warm.rate(at: 4) == 0.4 && warm.rate(at: 9) == 0.4)
        #expect(abs(warm.rate(at: 10) - 0.04) < 1e-7 && abs(warm.rate(at: 25) - 0.004) < 1e-8)
        let cosine = LearningRateSchedule(base: 1, decay: .cosine(totalSteps: 100, finalFactor: 0))
        #expect(cosine.rate(at: 0) == 1 && abs(cosine.rate(at: 50) - 0.5) < 1e-6 && cosine.rate(at: 100) < 1e-7)
        #expect(cosine.rate(at: 150) == cosine.rate(at: 100))
    }
}

@Suite struct SaveLoadTests {
    func resNetStep(_ model: Classifier, _ sgd: SGD, _ step: Int) throws {
        let x = normalTensor([4, 1, 12, 12], seed: 500 + UInt64(step), stream: 77)
        model.zeroGradients()
        _ = try model.lossAndGradients(input: x, labels: [0, 1, 2, step % 3])
        sgd.apply(to: model.parameters)
    }

    @Test func resNetSaveLoadContinueIsBitIdentical() throws {
        let options = SGD.Options(momentum: 0.9, nesterov: true, weightDecay: 1e-4, weightDecayExcludesNormalizationAndBias: true)
        let schedule = LearningRateSchedule(base: 0.1, warmupSteps: 3)
        let reference = try ResNet.small(depth: 8, classes: 3, inputChannels: 1, imageSize: 12, baseWidth: 4, seed: 9)
        let referenceSGD = SGD(options: options, schedule: schedule)
        for step in 0..<6 { try resNetStep(reference, referenceSGD, step) }

        let first = try ResNet.small(depth: 8, classes: 3, inputChannels: 1, imageSize: 12, baseWidth: 4, seed: 9)
        let firstSGD = SGD(options: options, schedule: schedule)
        for step in 0..<3 { try resNetStep(first, firstSGD, step) }
        var writer = StateWriter()
        first.save(to: &writer)
        firstSGD.save(to: &writer)

        // A model built from another seed takes every value from the checkpoint.
        let resumed = try ResNet.small(depth: 8, classes: 3, inputChannels: 1, imageSize: 12, baseWidth: 4, seed: 99)
        let resumedSGD = SGD(options: options, schedule: schedule)
        var reader = StateReader(writer.bytes)
        try resumed.load(from: &reader)
        try resumedSGD.load(from: &reader)
        #expect(reader.isAtEnd)
        for step in 3..<6 { try resNetStep(resumed, resumedSGD, step) }
        for (a, b) in zip(reference.parameters, resumed.parameters) {
            #expect(a.value.scalars.map(\.bitPattern) == b.value.scalars.map(\.bitPattern), "\(a.name) differs")
        }
        for (a, b) in zip(reference.buffers, resumed.buffers) {
            #expect(a.value.scalars.map(\.bitPattern) == b.value.scalars.map(\.bitPattern), "\(a.name) differs")
        }
    }

    @Test func lstmSaveLoadContinueIsBitIdenticalWithDropoutAndCarriedState() throws {
        func make(_ seed: UInt64) throws -> LSTMLanguageModel {
            try LSTMLanguageModel(vocabularySize: 13, embeddingSize: 5, hiddenSize: 6, layers: 2, dropout: 0.3, seed: seed)
        }
        func step(_ model: LSTMLanguageModel, _ sgd: SGD, _ s: Int) throws {
            let tokens = (0..<12).map { ($0 * 5 + s) % 13 }, targets = (0..<12).map { ($0 * 3 + s) % 13 }
            model.zeroGradients()
            _ = try model.lossAndGradients(tokens: tokens, targets: targets, steps: 4, batch: 3)
            sgd.apply(to: model.parameters)
        }
        let options = SGD.Options(momentum: 0, maxGradientNorm: 0.25)
        let reference = try make(1), referenceSGD = SGD(options: options, schedule: .constant(1))
        for s in 0..<6 { try step(reference, referenceSGD, s) }
        let first = try make(1), firstSGD = SGD(options: options, schedule: .constant(1))
        for s in 0..<3 { try step(first, firstSGD, s) }
        var writer = StateWriter()
        first.save(to: &writer)
        firstSGD.save(to: &writer)
        let resumed = try make(2), resumedSGD = SGD(options: options, schedule: .constant(1))
        var reader = StateReader(writer.bytes)
        try resumed.load(from: &reader)
        try resumedSGD.load(from: &reader)
        for s in 3..<6 { try step(resumed, resumedSGD, s) }
        for (a, b) in zip(reference.parameters, resumed.parameters) {
            #expect(a.value.scalars.map(\.bitPattern) == b.value.scalars.map(\.bitPattern), "\(a.name) differs")
        }
    }

    @Test func loadingIntoAnotherArchitectureFails() throws {
        let small = try ResNet.small(depth: 8, classes: 3, inputChannels: 1, imageSize: 12, baseWidth: 4, seed: 1)
        var writer = StateWriter()
        small.save(to: &writer)
        let wider = try ResNet.small(depth: 8, classes: 3, inputChannels: 1, imageSize: 12, baseWidth: 8, seed: 1)
        var reader = StateReader(writer.bytes)
        #expect(throws: NeuralNetworkError.self) { try wider.load(from: &reader) }
    }
}
