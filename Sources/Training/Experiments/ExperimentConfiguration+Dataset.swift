extension ExperimentConfiguration {
    /// The datasets an experiment trains on, by the name the command line and the logs use.
    public enum Dataset: String, CaseIterable, Codable, Sendable, CustomStringConvertible {
        case fashionMNIST = "fashion-mnist", cifar10, wikitext2, shakespeare

        public var description: String { rawValue }

        /// What the dataset is, for `--help`.
        public var summary: String {
            switch self {
            case .fashionMNIST: "28×28 grey images, 10 classes"
            case .cifar10: "32×32 colour images, 10 classes"
            case .wikitext2: "word-level text"
            case .shakespeare: "character-level text"
            }
        }

        /// Whether it is a token stream for a language model (`Model.isLanguageModel`) rather than images.
        public var isText: Bool { self == .wikitext2 || self == .shakespeare }
    }
}
