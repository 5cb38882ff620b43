import Datasets
import Foundation
import NeuralNetworks

/// A configured experiment: its data loaded once, and a fresh model replica, optimizer and data
/// shard for each worker (`makeWorkload`). Replicas built from the same seed are identical.
public final class Experiment: @unchecked Sendable {
    public let configuration: ExperimentConfiguration
    /// Loaded image data (image models) or token streams (language models).
    private let images: (train: ImageDataset, test: ImageDataset)?
    private let corpus: LanguageCorpus?

    public init(_ configuration: ExperimentConfiguration) throws {
        self.configuration = configuration
        let directory = configuration.resolvedDataDirectory()
        switch configuration.dataset {
        case .fashionMNIST:
            images = (try ImageDataset.fashionMNIST(directory: directory, split: .train),
                      try ImageDataset.fashionMNIST(directory: directory, split: .test))
            corpus = nil
        case .cifar10:
            images = (try ImageDataset.cifar10(directory: directory, split: .train), try ImageDataset.cifar10(directory: directory, split: .test))
            corpus = nil
        case .wikitext2:
            images = nil
            corpus = try LanguageCorpus.wikiText(directory: directory)
        case .shakespeare:
            images = nil
            let path = directory.hasSuffix(".txt") ? directory : directory + "/input.txt"
            corpus = try LanguageCorpus.characters(path: path)
        }
        if configuration.isLanguageModel != (corpus != nil) {
            throw DatasetError.invalidRequest("model \(configuration.model) cannot train on \(configuration.dataset)")
        }
    }

    private init(configuration: ExperimentConfiguration, images: (train: ImageDataset, test: ImageDataset)?, corpus: LanguageCorpus?) {
        self.configuration = configuration
        self.images = images
        self.corpus = corpus
    }

    /// The experiment with a configuration that trains on the same data (another seed or DP
    /// setting, say): shares the loaded data instead of loading it again.
    public func reconfigured(_ change: (inout ExperimentConfiguration) -> Void) throws -> Experiment {
        var changed = configuration
        change(&changed)
        guard changed.dataset == configuration.dataset, changed.dataDirectory == configuration.dataDirectory else {
            return try Experiment(changed)
        }
        return Experiment(configuration: changed, images: images, corpus: corpus)
    }

    /// A description of the data for summaries.
    public var dataDescription: String {
        if let images { return "\(images.train.name): \(images.train.count) training, \(images.test.count) test images" }
        if let corpus { return "\(corpus.name): \(corpus.train.count) training, \(corpus.test.count) test tokens, vocabulary \(corpus.vocabulary.count)" }
        return ""
    }

    /// The run's length with `workers` workers, from the data alone (no replica is built).
    public func schedule(workers: Int) throws -> StepSchedule {
        let c = configuration
        let stepsPerEpoch: Int
        if let images {
            stepsPerEpoch = try imageBatcher(images).stepsPerEpoch(workers: workers, batchSize: c.batchSize)
        } else {
            // Every worker's share of the stream holds the same number of windows; rank 0's is the count.
            stepsPerEpoch = try LanguageModelBatcher(stream: corpus!.train, batch: c.batchSize, bptt: c.bptt, rank: 0,
                                                     workers: workers).windows
        }
        return StepSchedule(stepsPerEpoch: stepsPerEpoch, epochs: c.epochs, steps: c.steps)
    }

    private func imageBatcher(_ images: (train: ImageDataset, test: ImageDataset)) throws -> ImageBatcher {
        try ImageBatcher(train: images.train, test: images.test, seed: configuration.seed, augment: configuration.dataset == .cifar10)
    }

    /// Worker `rank`'s replica. `threads` is the intra-op parallelism of the model (1 when
    /// workers already occupy the cores). `reducerAppliesMomentum` builds the optimizer without
    /// momentum, for reducers whose output already carries it (DGC, Signum).
    public func makeWorkload(rank: Int, workers: Int, threads: Int = 1, reducerAppliesMomentum: Bool = false) throws -> Workload {
        let c = configuration
        let optimizer = optimizer(totalSteps: try schedule(workers: workers).totalSteps, momentum: !reducerAppliesMomentum)
        if let images {
            return ClassifierWorkload(model: try makeClassifier(width: c.width, threads: threads), optimizer: optimizer,
                                      data: try imageBatcher(images), batchSize: c.batchSize)
        }
        return LanguageModelWorkload(model: try makeLanguageModel(width: c.width), optimizer: optimizer, corpus: corpus!,
                                     batchSize: c.batchSize, bptt: c.bptt)
    }

    /// The image model at `width` (0: the model's default; see `ExperimentConfiguration.width`).
    private func makeClassifier(width: Double, threads: Int) throws -> Classifier {
        let model = try imageArchitecture(width: width, threads: threads)
        model.useConvolutions(configuration.convolution)
        return model
    }

    private func imageArchitecture(width: Double, threads: Int) throws -> Classifier {
        let c = configuration, images = images!
        let classes = images.train.classes, channels = images.train.channels, size = images.train.height
        let width = width > 0 ? width : c.model.defaultWidth
        switch c.model {
        case .mlp:
            return MLP.make(inputShape: [channels, size, size], hidden: [Int(width)], classes: classes, seed: c.seed)
        case .resnet8, .resnet8GroupNorm:
            return try ResNet.small(depth: 8, classes: classes, inputChannels: channels, imageSize: size,
                                    baseWidth: Int(width), normalization: c.model == .resnet8 ? .batch : .group,
                                    seed: c.seed, threads: threads)
        case .resnet18:
            return ResNet.resNet18(classes: classes, inputChannels: channels, imageSize: size,
                                   widthMultiplier: width, seed: c.seed, threads: threads)
        case .lstm:
            throw DatasetError.invalidRequest("model \(c.model) is not an image classifier")
        }
    }

    private func makeLanguageModel(width: Double) throws -> LSTMLanguageModel {
        let hidden = Int(width > 0 ? width : configuration.model.defaultWidth)
        return try LSTMLanguageModel(vocabularySize: corpus!.vocabulary.count, embeddingSize: hidden, hiddenSize: hidden,
                                     layers: 2, dropout: 0.2, tiedWeights: true, seed: configuration.seed)
    }

    /// Training images, or training tokens of a language model.
    public var trainingSetSize: Int { images?.train.count ?? corpus?.train.count ?? 0 }

    /// The configured model's parameter count, without building it: every model here has a count
    /// that is a polynomial of degree at most 2 in its width (hidden units; the ResNets' base
    /// channel count, 64·m for ResNet-18's multiplier m), so replicas of widths 1, 2 and 3 fix it.
    /// Exact for the widths the models accept (ResNet-18: when 64·m is a whole number).
    public func parameterCount() throws -> Double {
        let c = configuration
        // ResNet-18's width is a multiplier of its 64 base channels; the polynomial is in channels.
        let scale: Double = c.model.hasWholeWidth ? 1 : 64
        let x = (c.width > 0 ? c.width : c.model.defaultWidth) * scale
        let counts = try [1.0, 2, 3].map { width in
            Double(images != nil ? try makeClassifier(width: width / scale, threads: 1).parameterCount
                                 : try makeLanguageModel(width: width).parameterCount)
        }
        // Lagrange interpolation through (1, counts[0]), (2, counts[1]), (3, counts[2]).
        return counts[0] * (x - 2) * (x - 3) / 2 - counts[1] * (x - 1) * (x - 3) + counts[2] * (x - 1) * (x - 2) / 2
    }

    func optimizer(totalSteps: Int, momentum: Bool) -> SGD {
        let c = configuration
        let decay: LearningRateSchedule.Decay
        switch c.schedule {
        case .constant: decay = .constant
        case .step: decay = .step(milestones: [totalSteps / 2, totalSteps * 3 / 4], factor: 0.1)
        case .cosine: decay = .cosine(totalSteps: totalSteps, finalFactor: 0)
        }
        return SGD(options: SGD.Options(momentum: momentum ? Float(c.momentum) : 0, nesterov: c.nesterov, nesterovForm: c.nesterovForm, weightDecay: Float(c.weightDecay),
                                        weightDecayExcludesNormalizationAndBias: true,
                                        maxGradientNorm: c.clipNorm > 0 ? Float(c.clipNorm) : nil),
                   schedule: LearningRateSchedule(base: Float(c.learningRate), warmupSteps: c.warmupSteps, decay: decay))
    }
}
