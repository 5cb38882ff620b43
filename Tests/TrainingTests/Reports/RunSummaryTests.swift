import Collectives
import Foundation
import Testing
@testable import Training

/// The end-of-run summary on hand-made records.
@Suite struct RunSummaryTests {
    /// Three steps whose compute times have a median (10 ms) far from their mean (40 ms).
    static func summary(workers: Int) -> RunSummary {
        let projection = try! ProjectionTarget(network: "10gbit", workers: 16)
        let settings = RunSettings(reducer: "powersgd(rank=2)", model: "mlp", dataset: "fashion-mnist", workers: workers,
                                   projection: projection)
        let collectives = [TrafficRecord.ringAllReduce(count: 10_000, workers: workers, seconds: 0)]
        let steps = [0.01, 0.01, 0.1].enumerated().map { index, compute in
            StepRecord(step: index, epoch: 0, loss: 1, payloadBytes: 40_000, bytesSent: 40_000, bytesReceived: 40_000,
                       uncompressedBytes: 4_000_000, cumulativePayloadBytes: 40_000 * (index + 1),
                       cumulativeBytesSent: 40_000 * (index + 1), computeSeconds: compute,
                       compressionSeconds: [0.002, 0.002, 0.02][index], communicationSeconds: 0.001,
                       optimizerSeconds: [0.001, 0.001, 0.01][index], projectedSeconds: 0, collectives: collectives)
        }
        return RunSummary(run: RunRecord(settings: settings, steps: steps), parameterCount: 1_000_000, network: "10gbit",
                          projectedWorkers: 16)
    }

    /// The speedup is plain SGD's time over the reducer's, both from means over the steps, and
    /// the summary says so.
    @Test func speedupComparesMeansWithMeans() throws {
        let summary = Self.summary(workers: 4)
        let text = summary.text
        let steps = summary.run.steps
        let mean = { (value: (StepRecord) -> Double) in steps.map(value).reduce(0, +) / Double(steps.count) }
        #expect(text.contains(String(format: "measured here, mean per step: %.1f ms in all, compute %.1f ms, compression %.1f ms",
                                     1e3 * mean(\.measuredSeconds), 1e3 * mean(\.computeSeconds), 1e3 * mean(\.compressionSeconds))),
                "\(text)")
        #expect(!text.contains("median"), "\(text)")
        for name in ["1gbit", "10gbit"] {
            let network = try NetworkModel(parsing: name)
            let target = ProjectionTarget(network: name, model: network, workers: 16)
            let sgd = mean(\.computeSeconds) + mean(\.optimizerSeconds)
                + network.time(of: .allReduce, payloadBytes: 4_000_000, workers: 16)
            let ours = mean { target.stepSeconds($0) }
            #expect(text.contains(String(format: "SGD %8.1f ms", 1e3 * sgd)), "\(name): \(text)")
            #expect(text.contains(String(format: "speedup %.2f×", sgd / ours)), "\(name): \(text)")
        }
    }

    /// Plain SGD sends the fp32 gradient; the projected networks are 1gbit, 10gbit and the run's own.
    @Test func bytesAndNetworksAgainstPlainSGD() throws {
        var summary = Self.summary(workers: 4)
        #expect(summary.sgdPayloadBytes == 4_000_000 && summary.fewerBytesThanSGD == 100)
        #expect(summary.projections.map(\.network) == ["1gbit", "10gbit"])
        summary.network = "25gbit"
        #expect(summary.projections.map(\.network) == ["1gbit", "10gbit", "25gbit"])
        // Bytes dominate on 1 Gbit/s: compressing 100× must pay off there.
        #expect(try #require(summary.projections.first).speedup > 1)
    }

    @Test func oneWorkerIsSingular() {
        #expect(Self.summary(workers: 1).text.contains("(powersgd(rank=2), 1 worker, 3 steps)"))
        #expect(TextFormatting.counted(1, "worker") == "1 worker" && TextFormatting.counted(2, "worker") == "2 workers")
    }
}
