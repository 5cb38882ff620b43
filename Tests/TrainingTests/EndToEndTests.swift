import Collectives
import Foundation
import GradientCompression
import Testing
@testable import Training

/// Training on the real data, small settings: the loss falls with SGD and with PowerSGD rank 2.
@Suite(.serialized) struct EndToEndTests {
    static var sharedData: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("shared/data").path
    }

    static func losses(_ configuration: ExperimentConfiguration, reducer: String, workers: Int = 2) throws -> [Double] {
        let experiment = try Experiment(configuration)
        let session = try TrainingSession(experiment: experiment, reducer: try ReducerSpecification(parsing: reducer),
                                          network: "10gbit", projectedWorkers: 16)
        return try InProcessGroup.run(workers: workers) { try session.run(group: $0).run.steps.map(\.loss) }[0]
    }

    static func mean(_ x: ArraySlice<Double>) -> Double { x.reduce(0, +) / Double(x.count) }

    @Test(arguments: ["sgd", "powersgd:rank=2"])
    func fashionMNISTLossFalls(reducer: String) throws {
        var c = ExperimentConfiguration()
        c.model = .mlp; c.dataset = .fashionMNIST; c.steps = 40; c.batchSize = 32; c.learningRate = 0.05; c.width = 64
        let losses = try Self.losses(c, reducer: reducer)
        #expect(losses.count == 40)
        #expect(Self.mean(losses.suffix(8)) < 0.7 * Self.mean(losses.prefix(8)))
    }

    @Test(arguments: ["sgd", "powersgd:rank=2"])
    func wikiText2LossFalls(reducer: String) throws {
        var c = ExperimentConfiguration()
        c.model = .lstm; c.dataset = .wikitext2; c.dataDirectory = Self.sharedData + "/wikitext-2"
        c.steps = 30; c.batchSize = 8; c.bptt = 10; c.width = 32; c.learningRate = 5; c.momentum = 0; c.clipNorm = 0.25
        c.evaluateEvery = 1000  // only the final evaluation
        let losses = try Self.losses(c, reducer: reducer)
        #expect(Self.mean(losses.suffix(6)) < Self.mean(losses.prefix(6)) - 0.5)
    }

    @Test func aMissingDatasetNamesTheFilesAndWhereToGetThem() {
        var c = ExperimentConfiguration()
        c.dataset = .cifar10; c.dataDirectory = "/nonexistent"
        #expect { _ = try Experiment(c) } throws: { "\($0)".contains("data_batch_1.bin") && "\($0)".contains("/nonexistent") }
    }
}
