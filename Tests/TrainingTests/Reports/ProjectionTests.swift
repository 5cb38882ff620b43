import Collectives
import Testing
@testable import Training

@Suite struct ProjectionTests {
    @Test func projectedStepTimeEqualsTheHandComputation() throws {
        let run = try SyntheticRuns.run(reducer: "sgd", payload: 1_000_000, evaluations: [])
        // Ring all-reduce of 1 MB on 4 workers of 10 Gbit/s: 2·3·10 µs + 2·(3/4)·1e6 B / 1.25e9 B/s
        // = 60 µs + 1.2 ms = 1.26 ms; local work 0.1 + 0.02 + 0.005 = 0.125 s; no overlap.
        let expected = 0.125 + 0.00126
        #expect(abs(run.projectedSecondsPerStep(on: SyntheticRuns.projection) - expected) < 1e-12)
        #expect(abs(run.steps[0].projectedSeconds - expected) < 1e-12)
        #expect(abs(run.measuredSecondsPerStep - 0.135) < 1e-12)

        // Re-projected onto 16 workers of 1 Gbit/s (α = 50 µs, β = 1.25e8 B/s):
        // 2·15·50 µs + 2·(15/16)·1e6 / 1.25e8 = 1.5 ms + 15 ms.
        let slow = try ProjectionTarget(network: "1gbit", workers: 16)
        #expect(abs(run.projectedSecondsPerStep(on: slow) - (0.125 + 0.0015 + 0.015)) < 1e-12)
    }

    @Test func allGatherProjectionGrowsWithWorkers() throws {
        let run = try SyntheticRuns.run(reducer: "signsgd", payload: 1000, evaluations: [], kind: .allGather)
        // Ring all-gather of 1000 B per rank on 16 workers of 1 Gbit/s: 15·50 µs + 15·1000 / 1.25e8.
        let target = try ProjectionTarget(network: "1gbit", workers: 16)
        #expect(abs(target.communicationSeconds(run.steps[0].collectives) - (15 * 50e-6 + 15 * 1000 / 1.25e8)) < 1e-15)
        let single = try ProjectionTarget(network: "1gbit", workers: 1)
        #expect(run.projectedSecondsPerStep(on: single) == 0.125)
    }

    @Test func invalidProjectionsThrowNamingTheInput() {
        #expect(throws: ReportError.invalidWorkers(0)) { try ProjectionTarget(network: "10gbit", workers: 0) }
        #expect(throws: NetworkModelError.self) { try ProjectionTarget(network: "fast", workers: 4) }
    }

    @Test func timeToTargetAccuracyPicksTheFirstEvaluationReachingIt() throws {
        let run = try SyntheticRuns.run(reducer: "sgd", payload: 1_000_000,
                                        evaluations: [(10, 0.5), (20, 0.72), (30, 0.70), (40, 0.8)])
        let hit = try #require(run.timeToTarget(0.7, projection: SyntheticRuns.projection))
        #expect(hit.evaluation.step == 20)
        #expect(abs(hit.measuredSeconds - 20 * 0.135) < 1e-12)
        #expect(abs(hit.projectedSeconds - 20 * 0.12626) < 1e-12)
        #expect(run.timeToTarget(0.8, projection: SyntheticRuns.projection)?.evaluation.step == 40)
        #expect(run.timeToTarget(0.5, projection: SyntheticRuns.projection)?.evaluation.step == 10)
        #expect(run.timeToTarget(0.81, projection: SyntheticRuns.projection) == nil)
    }

    @Test func timeToTargetPerplexityIsLowerIsBetter() throws {
        let run = try SyntheticRuns.run(reducer: "sgd", payload: 1_000_000,
                                        evaluations: [(10, 300), (20, 180), (30, 190), (40, 150)], metric: .perplexity)
        #expect(run.timeToTarget(200, projection: SyntheticRuns.projection)?.evaluation.step == 20)
        #expect(run.timeToTarget(150, projection: SyntheticRuns.projection)?.evaluation.step == 40)
        #expect(run.timeToTarget(400, projection: SyntheticRuns.projection)?.evaluation.step == 10)
        #expect(run.timeToTarget(100, projection: SyntheticRuns.projection) == nil)
    }
}
