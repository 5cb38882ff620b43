/// What a run was: the settings line that opens its log (`"record": "run"`).
public struct RunSettings: Sendable, Codable, Equatable {
    /// The reducer's display name, e.g. `powersgd(rank=2)`.
    public var reducer: String
    /// The reducer's options as given (`rank` → `2`); shown in reports.
    public var reducerOptions: [String: String]
    public var model: String
    public var dataset: String
    /// Workers of the measured run.
    public var workers: Int
    public var batchSizePerWorker: Int?
    public var seed: UInt64?
    /// The network and worker count that `StepRecord.projectedSeconds` was computed for.
    public var projection: ProjectionTarget

    public init(reducer: String, reducerOptions: [String: String] = [:], model: String, dataset: String,
                workers: Int, batchSizePerWorker: Int? = nil, seed: UInt64? = nil, projection: ProjectionTarget) {
        self.reducer = reducer
        self.reducerOptions = reducerOptions
        self.model = model
        self.dataset = dataset
        self.workers = workers
        self.batchSizePerWorker = batchSizePerWorker
        self.seed = seed
        self.projection = projection
    }
}

/// A whole run: its settings, every step and every evaluation, in order.
public struct RunRecord: Sendable, Codable, Equatable {
    public var settings: RunSettings
    public var steps: [StepRecord]
    public var evaluations: [EvaluationRecord]

    public init(settings: RunSettings, steps: [StepRecord] = [], evaluations: [EvaluationRecord] = []) {
        self.settings = settings
        self.steps = steps
        self.evaluations = evaluations
    }

    /// The last evaluation: the run's final accuracy or perplexity.
    public var finalEvaluation: EvaluationRecord? { evaluations.last }

    /// Drops what a resume from a checkpoint at `step` will redo: step records `>= step`
    /// and evaluations after `step`.
    public mutating func rewind(toStep step: Int) {
        steps.removeAll { $0.step >= step }
        evaluations.removeAll { $0.step > step }
    }
}
