import Foundation
import NeuralNetworks
import Privacy

/// Everything that defines a training run except the reducer and the transport: model, data,
/// optimizer, schedule and length. The command line fills it; library users can too.
public struct ExperimentConfiguration: Sendable, Codable, Equatable {
    /// The learning-rate decay after warm-up (`Experiment.optimizer(totalSteps:momentum:)`).
    public enum Schedule: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
        case constant, step, cosine
        public var description: String { rawValue }

        /// What the schedule does, for `--help`.
        public var summary: String {
            switch self {
            case .constant: "the base rate throughout"
            case .step: "×0.1 at 50% and 75% of training"
            case .cosine: "cosine decay to 0 at the last step"
            }
        }
    }

    public var model = Model.resnet8
    public var dataset = Dataset.fashionMNIST
    /// Where the dataset's files are; nil means its standard location.
    public var dataDirectory: String?
    /// Examples (or, for language models, sequences) per worker per step.
    public var batchSize = 32
    /// Back-propagation-through-time window of the language models.
    public var bptt = 35
    public var epochs: Double = 1
    /// Optimizer steps in all; overrides `epochs` when set.
    public var steps: Int?
    public var learningRate: Double = 0.05
    public var schedule = Schedule.cosine
    public var warmupSteps = 0
    public var momentum: Double = 0.9
    public var nesterov = true
    /// PyTorch's Nesterov step x −= γ(Δ + μm) or the paper code's x −= γ(Δ + m) (`SGD.NesterovForm`).
    public var nesterovForm = SGD.NesterovForm.pytorch
    public var weightDecay: Double = 1e-4
    /// Global-norm clipping of the averaged gradient; 0 is off.
    public var clipNorm: Double = 0
    public var seed: UInt64 = 1
    /// Width multiplier of the ResNets, hidden size of the LSTM or MLP; 0 is the model's default.
    public var width: Double = 0
    /// What computes the image models' convolutions (the two round differently).
    public var convolution = ConvolutionImplementation.default
    /// Evaluate every this many steps; 0 means at the end of every epoch.
    public var evaluateEvery = 0
    /// DP-SGD (`--dp`): per-example clipping, Gaussian noise, Poisson lots; nil trains without it.
    public var dp: DifferentialPrivacySettings?
    /// Local SGD (`--sync-every` > 1, `--outer-optimizer`): rounds of inner steps, the reducer
    /// running once a round on the pseudo-gradients (`LocalSGDWorkload`); nil is per-step data
    /// parallelism.
    public var localSGD: LocalSGDSettings?

    public init() {}

    public var isLanguageModel: Bool { model.isLanguageModel }

    /// The standard location of each dataset: the Debian package for Fashion-MNIST, and
    /// `../shared/data/...` beside the project (where the tests' data lives) for the others.
    public func resolvedDataDirectory(projectRoot: String = FileManager.default.currentDirectoryPath) -> String {
        if let dataDirectory { return dataDirectory }
        let shared = URL(fileURLWithPath: projectRoot).deletingLastPathComponent().appendingPathComponent("shared/data").path
        switch dataset {
        case .fashionMNIST: return "/usr/share/datasets/fashion-mnist"
        case .cifar10: return shared + "/cifar10-subset"
        case .wikitext2: return shared + "/wikitext-2"
        case .shakespeare: return shared + "/tiny-shakespeare"
        }
    }
}
