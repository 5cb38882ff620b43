extension ExperimentConfiguration {
    /// The models an experiment trains, by the name the command line and the logs use.
    ///
    /// Adding a model: a case here (its summary and default width) and its line in
    /// `Experiment.makeClassifier` (or `makeLanguageModel`); the command line lists and validates
    /// the cases by themselves.
    public enum Model: String, CaseIterable, Codable, Sendable, CustomStringConvertible {
        case mlp, resnet8
        case resnet8GroupNorm = "resnet8-gn"
        case resnet18, lstm

        public var description: String { rawValue }

        /// What the model is, for `--help`.
        public var summary: String {
            switch self {
            case .mlp: "a perceptron with one hidden ReLU layer"
            case .resnet8: "a small ResNet for quick runs"
            case .resnet8GroupNorm: "ResNet-8 with group norm in place of batch norm (for --dp)"
            case .resnet18: "the paper's CIFAR ResNet-18"
            case .lstm: "the paper's 2-layer LSTM language model"
            }
        }

        /// Whether it trains on a token stream (`Dataset.isText`) rather than on images.
        public var isLanguageModel: Bool { self == .lstm }

        /// The width used when `ExperimentConfiguration.width` is 0: hidden units of the MLP and
        /// the LSTM, base channels of ResNet-8, the channel multiplier of ResNet-18.
        public var defaultWidth: Double {
            switch self {
            case .mlp: 256
            case .resnet8, .resnet8GroupNorm: 16
            case .resnet18: 1
            case .lstm: 200
            }
        }

        /// Whether the width counts units or channels (a whole number) rather than scaling them.
        public var hasWholeWidth: Bool { self != .resnet18 }
    }
}
