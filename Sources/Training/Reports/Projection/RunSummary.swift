import Collectives
import Foundation

/// The end of a run in numbers: what it achieved, what it sent compared with plain SGD, and what a
/// step would cost on a larger cluster, beside plain SGD on the same cluster.
///
/// Plain SGD here is the same run with the reducer replaced by one fp32 all-reduce of the whole
/// gradient: the same compute and optimizer time, no compression. Every time is a mean over the
/// run's steps: the projection prices every step (a PowerSGD+ refresh step included), so its
/// baseline uses the same statistic.
public struct RunSummary: Sendable {
    public var run: RunRecord
    /// The model's parameter count: plain SGD sends 4 bytes of each per step.
    public var parameterCount: Int
    /// The network of the run's projection; the summary always shows 1gbit and 10gbit as well.
    public var network: String
    /// Worker count of the projected cluster.
    public var projectedWorkers: Int

    public init(run: RunRecord, parameterCount: Int, network: String, projectedWorkers: Int) {
        self.run = run
        self.parameterCount = parameterCount
        self.network = network
        self.projectedWorkers = projectedWorkers
    }

    /// Payload bytes per worker per step of plain SGD: the fp32 gradient.
    public var sgdPayloadBytes: Double { 4 * Double(parameterCount) }

    /// How many times fewer bytes per step than plain SGD the run sent.
    public var fewerBytesThanSGD: Double { sgdPayloadBytes / max(run.payloadBytesPerStep, 1) }

    public var meanComputeSeconds: Double { mean(\.computeSeconds) }
    public var meanOptimizerSeconds: Double { mean(\.optimizerSeconds) }
    public var meanCompressionSeconds: Double { mean(\.compressionSeconds) }

    /// Plain SGD's and the run's projected mean time per step on one network.
    public struct Projection: Sendable, Equatable {
        public var network: String
        public var sgdSeconds: Double
        public var reducerSeconds: Double
        /// Above 1, the reducer is faster than plain SGD on this network.
        public var speedup: Double { sgdSeconds / reducerSeconds }
    }

    /// 1gbit, 10gbit, and `network` when it is neither.
    public var comparedNetworks: [String] {
        ["1gbit", "10gbit"] + (["1gbit", "10gbit"].contains(network) ? [] : [network])
    }

    /// The projection on each of `comparedNetworks` at `projectedWorkers` (a name that is not a
    /// network is left out).
    public var projections: [Projection] {
        comparedNetworks.compactMap { name in
            guard let model = try? NetworkModel(parsing: name) else { return nil }
            let target = ProjectionTarget(network: name, model: model, workers: projectedWorkers)
            let sgd = meanComputeSeconds + meanOptimizerSeconds
                + model.time(of: .allReduce, payloadBytes: Int(sgdPayloadBytes), workers: projectedWorkers)
            return Projection(network: name, sgdSeconds: sgd, reducerSeconds: run.projectedSecondsPerStep(on: target))
        }
    }

    /// The summary as the `train` command prints it.
    public var text: String {
        let workers = run.settings.workers
        var lines = ["", "Summary (\(run.settings.reducer), \(TextFormatting.counted(workers, "worker")), "
                     + "\(TextFormatting.counted(run.steps.count, "step")))"]
        if let final = run.finalEvaluation {
            lines.append(String(format: "  test %@: %.4f", final.metric.rawValue, final.value))
        }
        guard let last = run.steps.last else { return lines.joined(separator: "\n") }
        if let epsilon = last.epsilon {
            lines.append(String(format: "  differential privacy: ε = %.4f spent after %d steps (DP-SGD, RDP accountant)",
                                epsilon, last.step + 1))
        }
        lines.append(String(format: "  bytes per worker per step: %@ (plain SGD: %@), %.1f× fewer; compression ratio %.1f",
                            Self.human(run.payloadBytesPerStep), Self.human(sgdPayloadBytes), fewerBytesThanSGD,
                            run.compressionRatio ?? 1))
        lines.append(String(format: "  measured here, mean per step: %.1f ms in all, compute %.1f ms, compression %.1f ms",
                            1e3 * run.measuredSecondsPerStep, 1e3 * meanComputeSeconds, 1e3 * meanCompressionSeconds))
        lines.append("  projected mean time per step at \(projectedWorkers) workers (compute + compression + communication):")
        for projection in projections {
            lines.append(String(format: "    %-8@ SGD %8.1f ms   %@ %8.1f ms   speedup %.2f×", projection.network as NSString,
                                1e3 * projection.sgdSeconds, run.settings.reducer as NSString, 1e3 * projection.reducerSeconds,
                                projection.speedup))
        }
        return lines.joined(separator: "\n")
    }

    private func mean(_ value: KeyPath<StepRecord, Double>) -> Double {
        run.steps.isEmpty ? 0 : run.steps.reduce(0) { $0 + $1[keyPath: value] } / Double(run.steps.count)
    }

    private static func human(_ bytes: Double) -> String {
        bytes >= 1e6 ? String(format: "%.2f MB", bytes / 1e6) : bytes >= 1e3 ? String(format: "%.1f kB", bytes / 1e3)
            : String(format: "%.0f B", bytes)
    }
}
