/// How long a run is, in optimizer steps: steps per epoch at its worker count, and the total.
///
/// The one place the length of a run is computed (the trainer's loop, the learning-rate schedule,
/// the DP accountant and a resume all read it), from the data alone: no model replica is built.
public struct StepSchedule: Sendable, Equatable {
    /// Optimizer steps per epoch: the same on every worker (the data shard rule guarantees it).
    public var stepsPerEpoch: Int
    /// Optimizer steps in all, counted from step 0 (resumes included).
    public var totalSteps: Int

    /// `steps` when given, else ⌈epochs · stepsPerEpoch⌉, and at least 1.
    public init(stepsPerEpoch: Int, epochs: Double, steps: Int?) {
        self.stepsPerEpoch = stepsPerEpoch
        totalSteps = steps ?? max(1, Int((epochs * Double(stepsPerEpoch)).rounded(.up)))
    }
}
