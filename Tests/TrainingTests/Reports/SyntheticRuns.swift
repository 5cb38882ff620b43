import Collectives
import GradientCompression
@testable import Training

/// Synthetic runs with round numbers, so every table cell and projection has a hand value.
enum SyntheticRuns {
    /// 10 Gbit/s (α = 10 µs, β = 1.25e9 B/s), projected onto 4 workers.
    static let projection = ProjectionTarget(network: "10gbit", model: NetworkModel(latency: 10e-6, bandwidth: 1.25e9),
                                             workers: 4)

    /// A run of `steps` identical steps: compute 0.1 s, compression 0.02 s, communication 0.01 s,
    /// optimizer 0.005 s; one all-reduce of `payload` bytes measured on 4 workers; uncompressed
    /// 4 MB per step; evaluations `(step, value)` of `metric`.
    static func run(reducer: String, payload: Int, steps: Int = 40, losses: ((Int) -> Double)? = nil,
                    evaluations: [(Int, Double)], metric: EvaluationPart.Metric = .accuracy,
                    kind: CollectiveKind = .allReduce, log: RunLogWriter? = nil) throws -> RunRecord {
        let settings = RunSettings(reducer: reducer, reducerOptions: ["rank": "2"], model: "mlp", dataset: "synthetic",
                                   workers: 4, batchSizePerWorker: 8, seed: 7, projection: projection)
        let recorder = try RunRecorder(settings: settings, log: log)
        let sent = kind == .allReduce ? TrafficLedger.ringAllReduceBytes(payloadBytes: payload, workers: 4) : 3 * payload
        let collective = TrafficRecord(kind: kind, payloadBytes: payload, bytesSent: sent, bytesReceived: sent,
                                       seconds: 0.01, workers: 4)
        var pending = evaluations[...]
        for step in 0..<steps {
            try recorder.recordStep(step: step, epoch: step / 20, loss: losses?(step) ?? 2 / Double(step + 1),
                                    learningRate: 0.1, computeSeconds: 0.1, compressionSeconds: 0.02,
                                    communicationSeconds: 0.01, optimizerSeconds: 0.005,
                                    reduction: ReductionStats(payloadBytes: payload, bytesSent: sent, bytesReceived: sent,
                                                              uncompressedBytes: 4_000_000, computeSeconds: 0.02,
                                                              communicationSeconds: 0.01, collectives: [collective]))
            while let next = pending.first, next.0 == step + 1 {
                try recorder.recordEvaluation(step: next.0, epoch: step / 20, metric: metric, value: next.1)
                pending = pending.dropFirst()
            }
        }
        return recorder.run
    }
}
