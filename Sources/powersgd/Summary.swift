import Collectives
import Foundation
import Training

/// The end-of-run summary: what the run achieved, what it sent compared with plain SGD, and
/// what a step would cost on a larger cluster.
struct Summary {
    var result: TrainingSession.Result
    var network: String
    var run: RunRecord { result.run }
    var projectedWorkers: Int

    /// Every time here is a mean over the run's steps: the projection prices every step (a
    /// PowerSGD+ refresh step included), so its baseline uses the same statistic.
    var text: String {
        let workers = run.settings.workers
        var lines = ["", "Summary (\(run.settings.reducer), \(counted(workers, "worker")), \(counted(run.steps.count, "step")))"]
        if let final = run.finalEvaluation {
            lines.append(String(format: "  test %@: %.4f", final.metric.rawValue, final.value))
        }
        guard !run.steps.isEmpty else { return lines.joined(separator: "\n") }
        if let epsilon = run.steps.last?.epsilon {
            lines.append(String(format: "  differential privacy: ε = %.4f spent after %d steps (DP-SGD, RDP accountant)", epsilon,
                                run.steps.last!.step + 1))
        }
        let sgdBytes = 4.0 * Double(result.parameterCount)
        let bytes = run.payloadBytesPerStep
        lines.append(String(format: "  bytes per worker per step: %@ (plain SGD: %@), %.1f× fewer; compression ratio %.1f",
                            human(bytes), human(sgdBytes), sgdBytes / max(bytes, 1), run.compressionRatio ?? 1))
        let steps = Double(run.steps.count)
        let compute = run.steps.reduce(0) { $0 + $1.computeSeconds } / steps
        let optimizer = run.steps.reduce(0) { $0 + $1.optimizerSeconds } / steps
        let compression = run.steps.reduce(0) { $0 + $1.compressionSeconds } / steps
        lines.append(String(format: "  measured here, mean per step: %.1f ms in all, compute %.1f ms, compression %.1f ms",
                            1e3 * run.measuredSecondsPerStep, 1e3 * compute, 1e3 * compression))
        lines.append("  projected mean time per step at \(projectedWorkers) workers (compute + compression + communication):")
        for name in ["1gbit", "10gbit"] + (["1gbit", "10gbit"].contains(network) ? [] : [network]) {
            guard let net = try? NetworkModel(parsing: name) else { continue }
            let ours = run.projectedSecondsPerStep(on: ProjectionTarget(network: name, model: net, workers: projectedWorkers))
            // Plain SGD on the same cluster: the same compute and optimizer, one fp32 all-reduce.
            let sgd = compute + optimizer + net.time(of: .allReduce, payloadBytes: Int(sgdBytes), workers: projectedWorkers)
            lines.append(String(format: "    %-8@ SGD %8.1f ms   %@ %8.1f ms   speedup %.2f×", name as NSString, 1e3 * sgd,
                                run.settings.reducer as NSString, 1e3 * ours, sgd / ours))
        }
        return lines.joined(separator: "\n")
    }

    private func human(_ bytes: Double) -> String {
        bytes >= 1e6 ? String(format: "%.2f MB", bytes / 1e6) : bytes >= 1e3 ? String(format: "%.1f kB", bytes / 1e3) : String(format: "%.0f B", bytes)
    }
}
