import NeuralNetworks
import Testing
@testable import Training

@Suite struct StepScheduleTests {
    @Test func totalStepsRoundEpochsUpAndStepsOverride() {
        #expect(StepSchedule(stepsPerEpoch: 10, epochs: 1.25, steps: nil).totalSteps == 13)
        #expect(StepSchedule(stepsPerEpoch: 10, epochs: 0.01, steps: nil).totalSteps == 1)
        #expect(StepSchedule(stepsPerEpoch: 10, epochs: 3, steps: 7).totalSteps == 7)
    }

    /// The schedule, computed from the data alone, agrees with the replica's own epoch length and
    /// with the optimizer's: the default cosine decay spans exactly its total steps.
    @Test(arguments: [1, 2, 3])
    func experimentScheduleMatchesTheWorkload(workers: Int) throws {
        var c = ExperimentConfiguration()
        c.model = .mlp; c.dataset = .fashionMNIST; c.width = 8; c.batchSize = 64; c.epochs = 0.5
        let experiment = try Experiment(c)
        let schedule = try experiment.schedule(workers: workers)
        let workload = try experiment.makeWorkload(rank: 0, workers: workers)
        #expect(schedule.stepsPerEpoch == workload.stepsPerEpoch(workers: workers))
        #expect(schedule.totalSteps == Int((0.5 * Double(schedule.stepsPerEpoch)).rounded(.up)))
        let sgd = try #require((workload as? ClassifierWorkload)?.optimizer)
        #expect(sgd.schedule.decay == .cosine(totalSteps: schedule.totalSteps, finalFactor: 0))
    }
}
