import LinearAlgebra
@testable import NeuralNetworks
import Testing
import TestSupport

/// The backward hook of `--overlap` (`GradientReadiness`): every parameter reported exactly once,
/// in reverse order, and only when its gradient is final — the gradient seen at the report is
/// the one the whole backward pass leaves — and the hook changes no bit of any gradient.
@Suite struct GradientReadinessTests {
    /// Runs `pass` without and with the hook from zero gradients and checks the reports.
    static func expectFinalReports(_ parameters: [Parameter], _ pass: (((Int) -> Void)?) throws -> Void) throws {
        for p in parameters { p.zeroGradient() }
        try pass(nil)
        let unhooked = parameters.map(\.gradient)
        for p in parameters { p.zeroGradient() }
        var order: [Int] = []
        var atReport = [Tensor?](repeating: nil, count: parameters.count)
        try pass { index in
            order.append(index)
            // A copy: backward's later in-place accumulation would copy the storage on write.
            atReport[index] = parameters[index].gradient
        }
        #expect(order == Array(parameters.indices.reversed()), "reports \(order)")
        for (index, p) in parameters.enumerated() {
            #expect(atReport[index] == p.gradient, "\(p.name) was reported before its gradient was final")
            #expect(p.gradient == unhooked[index], "\(p.name): the hooked pass computed another gradient")
            #expect(p.gradient.withUnsafeBufferPointer { $0.contains { $0 != 0 } }, "\(p.name) got no gradient")
        }
    }

    @Test func mlpReportsEveryParameterOnceInReverseOrder() throws {
        let model = MLP.make(inputShape: [1, 6, 6], hidden: [16, 8], classes: 4, seed: 3)
        let input = normalTensor([5, 1, 6, 6], seed: 4)
        try Self.expectFinalReports(model.parameters) {
            _ = try model.lossAndGradients(input: input, labels: [0, 1, 2, 3, 1], onGradientReady: $0)
        }
    }

    /// ResNet blocks report their parts, shortcut first (the last registered), not the block at its end.
    @Test func resNetBlocksReportTheirLayersInReverseOrder() throws {
        let model = try ResNet.small(depth: 8, classes: 3, inputChannels: 1, imageSize: 8, baseWidth: 4, seed: 5)
        let input = normalTensor([4, 1, 8, 8], seed: 6)
        try Self.expectFinalReports(model.parameters) {
            _ = try model.lossAndGradients(input: input, labels: [0, 1, 2, 0], onGradientReady: $0)
        }
    }

    /// With tied weights the decoder's matrix is the embedding's: it is final (and reported) only
    /// after the embedding's backward, its last use, although the decoder runs first.
    @Test(arguments: [false, true])
    func lstmLanguageModelReportsTiedWeightsAfterTheirLastUse(tied: Bool) throws {
        let model = try LSTMLanguageModel(vocabularySize: 11, embeddingSize: 6, hiddenSize: 6, layers: 2, dropout: 0,
                                          tiedWeights: tied, seed: 7)
        let tokens = (0..<12).map { ($0 * 5 + 1) % 11 }, targets = (0..<12).map { ($0 * 7 + 2) % 11 }
        try Self.expectFinalReports(model.parameters) {
            model.resetState()
            _ = try model.lossAndGradients(tokens: tokens, targets: targets, steps: 4, batch: 3, onGradientReady: $0)
        }
    }
}
