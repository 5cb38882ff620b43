import Collectives
import Foundation
import GradientCompression
import Testing
@testable import Training

/// The recorder fed by the real trainer: what the lead's `train` command does on rank 0.
@Suite struct RunRecorderTrainingTests {
    @Test func recorderFollowsTheTrainer() throws {
        let url = RunLogTests.temporaryFile("trainer.jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        let projection = try ProjectionTarget(network: "1gbit", workers: 16)
        let settings = RunSettings(reducer: "sgd", model: "mlp", dataset: "synthetic", workers: 2, projection: projection)
        let runs = try InProcessGroup.run(workers: 2) { group -> (RunRecord?, Int) in
            let workload = DataParallelTrainerTests.workload()
            let recorder = group.rank == 0 ? try RunRecorder(settings: settings, log: try RunLogWriter(url: url)) : nil
            var reducer: any GradientReducer = UncompressedReducer()
            let trainer = DataParallelTrainer(options: .init(totalSteps: 6, evaluateEvery: 3))
            try trainer.run(workload: workload, reducer: &reducer, group: group,
                            onStep: { try recorder?.record($0) }, onEvaluation: { try recorder?.record($0) })
            return (recorder?.run, workload.model.parameters.reduce(0) { $0 + $1.value.count })
        }
        let run = try #require(runs[0].0)
        let elements = runs[0].1
        #expect(run.steps.map(\.step) == Array(0..<6))
        #expect(run.evaluations.map(\.step) == [3, 6])
        for step in run.steps {
            #expect(step.payloadBytes == 4 * elements)
            #expect(step.uncompressedBytes == 4 * elements)
            #expect(step.compressionRatio == 1)
            #expect(step.collectives.count == 1 && step.collectives[0].kind == .allReduce)
            #expect(step.bytesSent == TrafficLedger.ringAllReduceBytes(payloadBytes: 4 * elements, workers: 2))
            #expect(step.computeSeconds > 0 && step.loss.isFinite)
            // Re-projected onto 16 workers of 1 Gbit/s with the network model's all-reduce formula.
            let expected = step.localSeconds + projection.model.time(of: .allReduce, payloadBytes: 4 * elements, workers: 16)
            #expect(abs(step.projectedSeconds - expected) < 1e-12)
        }
        #expect(run.evaluations[1].cumulativePayloadBytes == 6 * 4 * elements)
        #expect(abs(run.evaluations[1].elapsedSeconds - run.steps.reduce(0) { $0 + $1.measuredSeconds }) < 1e-9)
        #expect(try RunLog.read(url) == [run])
    }
}
