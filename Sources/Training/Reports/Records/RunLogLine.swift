/// One line of a JSON-lines run log: a flat JSON object whose `"record"` field says which kind
/// (`"run"`, `"step"`, `"evaluation"`) and whose other fields are that record's (docs/reports.md).
public enum RunLogLine: Sendable, Codable, Equatable {
    case run(RunSettings)
    case step(StepRecord)
    case evaluation(EvaluationRecord)

    private enum Kind: String, Codable { case run, step, evaluation }
    private enum Key: String, CodingKey { case record }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        switch try container.decode(Kind.self, forKey: .record) {
        case .run: self = .run(try RunSettings(from: decoder))
        case .step: self = .step(try StepRecord(from: decoder))
        case .evaluation: self = .evaluation(try EvaluationRecord(from: decoder))
        }
    }

    public func encode(to encoder: Encoder) throws {
        // The record's fields and "record" share one JSON object: the keyed containers of one
        // encoder write into the same object.
        var container = encoder.container(keyedBy: Key.self)
        switch self {
        case .run(let settings):
            try container.encode(Kind.run, forKey: .record)
            try settings.encode(to: encoder)
        case .step(let step):
            try container.encode(Kind.step, forKey: .record)
            try step.encode(to: encoder)
        case .evaluation(let evaluation):
            try container.encode(Kind.evaluation, forKey: .record)
            try evaluation.encode(to: encoder)
        }
    }
}
