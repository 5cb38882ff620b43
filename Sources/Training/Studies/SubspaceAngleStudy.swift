import Foundation

/// Study 3 of docs/studies.md (PowerSGD reviewer 1: when does the single warm-started power step
/// fail?): over a training run with a step schedule (learning rate ×0.1 at 1/2 and 3/4 of the
/// steps), the largest principal angle between PowerSGD's P̂ and the top-r left singular vectors
/// of the averaged error-corrected gradient, per compressed layer and per quarter of training
/// (the quarters start at the learning-rate drops), at ranks 1, 2 and 4, with the final accuracy.
public enum SubspaceAngleStudy {
    public static func variants(ranks: [Int] = [1, 2, 4]) -> [PowerStepTracking.Variant] {
        ranks.map { .init(rank: $0) }
    }

    /// The quarter of training `step` falls in (0…3).
    static func quarter(_ step: Int, of steps: Int) -> Int { min(3, 4 * step / max(1, steps)) }

    public static func report(_ runs: [PowerStepTracking.Run], configuration: ExperimentConfiguration) -> StudyReport {
        var report = StudyReport(title: "Where PowerSGD's warm-started power step loses the top subspace")
        report.paragraphs.append("""
            \(configuration.model) on \(configuration.dataset), \(runs.first?.steps ?? 0) steps, batch \(configuration.batchSize) per worker, \
            \(configuration.schedule.rawValue) schedule from \(TextFormatting.significant(configuration.learningRate)), seed \
            \(configuration.seed); one power iteration per step with warm start (the paper's PowerSGD). θ is the largest \
            principal angle between span P̂ and span U_r, U_r the top-r left singular vectors of the averaged \
            error-corrected gradient M̄ of the same step: 0° when PowerSGD found the best subspace, 90° when one of its \
            directions is orthogonal to it. The angle alone overstates a failure where σ_{r+1} ≈ σ_r: the top-r subspace \
            is then barely defined and any basis near it approximates almost as well, so the table gives the gap \
            ratio σ_{r+1}/σ_r beside it. The error ratio is ‖M̄ − P̂P̂ᵀM̄‖ / ‖M̄ − M̄_r‖ (1: optimal). Q1–Q4 are \
            the quarters of training.
            """)
        report.paragraphs.append(findings(runs))
        var rows: [[String]] = []
        for run in runs {
            for tensor in Set(run.measurements.map(\.tensor)).sorted() {
                let layer = run.measurements.filter { $0.tensor == tensor }
                let quarters = (0..<4).map { q in
                    PowerStepTracking.degrees(PowerStepTracking.mean(layer.filter { quarter($0.step, of: run.steps) == q }.map(\.largestAngle)))
                }
                let wide = Double(layer.filter { $0.largestAngle > .pi / 4 }.count) / Double(max(1, layer.count))
                rows.append([String(run.variant.rank), "\(tensor) (\(layer[0].shape.map(String.init).joined(separator: "×")))"]
                            + quarters + [PowerStepTracking.percent(wide),
                                          TextFormatting.significant(PowerStepTracking.mean(layer.map(\.spectralGapRatio))),
                                          TextFormatting.significant(PowerStepTracking.errorRatio(layer)),
                                          PowerStepTracking.percent(run.finalMetric)])
            }
        }
        report.tables.append(StudyReport.Table(
            caption: "Mean θ per layer and quarter of training; share of sampled steps with θ > 45°; mean σ_{r+1}/σ_r; pooled error ratio; final accuracy",
            header: ["rank", "layer (shape)", "θ Q1", "θ Q2", "θ Q3", "θ Q4", "θ > 45°", "σ_{r+1}/σ_r", "error / SVD's", "final accuracy"],
            rows: rows))
        for run in runs {
            let series = Set(run.measurements.map(\.tensor)).sorted().map { tensor in
                let layer = run.measurements.filter { $0.tensor == tensor }
                return LineChart.Series(name: "layer \(tensor) (\(layer[0].shape.map(String.init).joined(separator: "×")))",
                                        points: layer.map { (Double($0.step), $0.largestAngle * 180 / .pi) })
            }
            report.charts.append(LineChart(title: "Rank \(run.variant.rank): largest principal angle between P̂ and U_r",
                                           x: .init("step", fromZero: true), y: .init("θ (degrees)", fromZero: true), series: series))
        }
        return report
    }

    /// Per rank: the layer and quarter with the widest mean angle and the narrowest, and how the
    /// angle changes across the learning-rate drops.
    static func findings(_ runs: [PowerStepTracking.Run]) -> String {
        var sentences: [String] = []
        for run in runs {
            var cells: [(tensor: Int, quarter: Int, angle: Double)] = []
            for tensor in Set(run.measurements.map(\.tensor)).sorted() {
                for q in 0..<4 {
                    let angles = run.measurements.filter { $0.tensor == tensor && quarter($0.step, of: run.steps) == q }.map(\.largestAngle)
                    if !angles.isEmpty { cells.append((tensor, q, PowerStepTracking.mean(angles))) }
                }
            }
            guard let widest = cells.max(by: { $0.angle < $1.angle }), let narrowest = cells.min(by: { $0.angle < $1.angle }) else { continue }
            let byQuarter = (0..<4).map { q in
                PowerStepTracking.degrees(PowerStepTracking.mean(run.measurements.filter { quarter($0.step, of: run.steps) == q }.map(\.largestAngle)))
            }
            let (nearGap, clearGap) = (run.measurements.filter { $0.spectralGapRatio >= 0.8 }, run.measurements.filter { $0.spectralGapRatio < 0.8 })
            sentences.append("Rank \(run.variant.rank): mean θ \(PowerStepTracking.degrees(PowerStepTracking.mean(clearGap.map(\.largestAngle)))) "
                             + "where σ_{r+1}/σ_r < 0.8 (\(clearGap.count) samples, error \(TextFormatting.significant(PowerStepTracking.errorRatio(clearGap)))× the SVD's) "
                             + "and \(PowerStepTracking.degrees(PowerStepTracking.mean(nearGap.map(\.largestAngle)))) where it is ≥ 0.8 "
                             + "(\(nearGap.count) samples, error \(TextFormatting.significant(PowerStepTracking.errorRatio(nearGap)))×).")
            sentences.append("Rank \(run.variant.rank) (final accuracy \(PowerStepTracking.percent(run.finalMetric))): mean θ over layers by quarter "
                             + "\(byQuarter.joined(separator: ", ")); widest layer \(widest.tensor) in Q\(widest.quarter + 1) "
                             + "(\(PowerStepTracking.degrees(widest.angle))), narrowest layer \(narrowest.tensor) in Q\(narrowest.quarter + 1) "
                             + "(\(PowerStepTracking.degrees(narrowest.angle))); pooled error \(TextFormatting.significant(PowerStepTracking.errorRatio(run.measurements)))× the SVD's.")
        }
        return sentences.joined(separator: " ")
    }
}
