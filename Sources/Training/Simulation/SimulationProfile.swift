/// The measured profile a scaling simulation starts from: one model's per-worker compute time per
/// step and the per-step traffic of each reducer (the baseline among them). JSON via `Codable`.
public struct SimulationProfile: Sendable, Codable, Equatable {
    public var model: String
    /// Forward + backward seconds per step of one worker (its batch size fixed as W grows).
    public var computeSeconds: Double
    /// Optimizer seconds per step.
    public var optimizerSeconds: Double
    /// The reducer every speedup is measured against (plain SGD: `sgd`).
    public var baseline: String
    public var reducers: [ReducerTraffic]

    public init(model: String, computeSeconds: Double, optimizerSeconds: Double = 0, baseline: String = "sgd",
                reducers: [ReducerTraffic]) {
        self.model = model
        self.computeSeconds = computeSeconds
        self.optimizerSeconds = optimizerSeconds
        self.baseline = baseline
        self.reducers = reducers
    }

    /// A profile from logged runs of one model: mean compute and optimizer seconds over all their
    /// steps, each run's traffic (`ReducerTraffic(run:)`); the baseline is the run named `baseline`.
    public init(runs: [RunRecord], baseline: String = "sgd") throws {
        guard let first = runs.first else { throw ReportError.noRuns }
        let steps = runs.flatMap(\.steps)
        guard !steps.isEmpty else { throw ReportError.emptyProfile("the runs have no step records") }
        self.init(model: first.settings.model,
                  computeSeconds: steps.reduce(0) { $0 + $1.computeSeconds } / Double(steps.count),
                  optimizerSeconds: steps.reduce(0) { $0 + $1.optimizerSeconds } / Double(steps.count),
                  baseline: baseline, reducers: try runs.map(ReducerTraffic.init(run:)))
    }

    /// The baseline's traffic; throws naming the missing reducer.
    func baselineTraffic() throws -> ReducerTraffic {
        guard let traffic = reducers.first(where: { $0.reducer == baseline }) else {
            throw ReportError.emptyProfile("the baseline reducer '\(baseline)' is not among the profiled reducers "
                                           + "(\(reducers.map(\.reducer).joined(separator: ", ")))")
        }
        return traffic
    }
}
