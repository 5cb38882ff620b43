import Foundation

/// Study 2 of docs/studies.md (PowerSGD reviewer: "study the convergence with k-step power
/// method"): PowerSGD with k = 1, 2, 4 power iterations per step, warm start on and off, ranks
/// 1, 2 and 4, on the same model, data and seed. Reports, per variant, PowerSGD's relative error
/// ‖M̄ − P̂P̂ᵀM̄‖/‖M̄‖ next to the exact rank-r SVD's ‖M̄ − M̄_r‖/‖M̄‖ on the same averaged
/// error-corrected gradient over training, their ratio, the bytes per step and the final accuracy.
public enum PowerIterationStudy {
    public static func variants(ranks: [Int] = [1, 2, 4], iterations: [Int] = [1, 2, 4]) -> [PowerStepTracking.Variant] {
        ranks.flatMap { rank in [true, false].flatMap { warm in iterations.map { .init(rank: rank, powerIterations: $0, warmStart: warm) } } }
    }

    public static func report(_ runs: [PowerStepTracking.Run], configuration: ExperimentConfiguration) -> StudyReport {
        var report = StudyReport(title: "k-step power iteration in PowerSGD")
        report.paragraphs.append("""
            \(configuration.model) on \(configuration.dataset), \(runs.first?.steps ?? 0) steps (\(TextFormatting.significant(configuration.epochs)) \
            epochs), batch \(configuration.batchSize) per worker, \(configuration.schedule.rawValue) schedule from \
            \(TextFormatting.significant(configuration.learningRate)), seed \(configuration.seed); the same run for every variant. On \
            sampled steps, for every compressed layer, the averaged error-corrected gradient M̄ is compared with \
            PowerSGD's approximation P̂P̂ᵀM̄ and with its exact rank-r truncation M̄_r (Eckart–Young); errors are pooled \
            over layers and steps (square roots of summed squares).
            """)
        report.paragraphs.append(findings(runs))
        report.tables.append(StudyReport.Table(
            caption: "Per variant: bytes, final accuracy, and the approximation error against the exact SVD's",
            header: ["rank", "k", "warm start", "bytes/step", "final accuracy", "PowerSGD error", "exact SVD error",
                     "PowerSGD / SVD", "last-quarter PowerSGD / SVD"],
            rows: runs.map { run in
                let errors = PowerStepTracking.relativeErrors(run.measurements)
                let late = run.measurements.filter { $0.step >= run.steps * 3 / 4 }
                return [String(run.variant.rank), String(run.variant.powerIterations), run.variant.warmStart ? "on" : "off",
                        TextFormatting.bytes(run.bytesPerStep), PowerStepTracking.percent(run.finalMetric),
                        PowerStepTracking.percent(errors.power), PowerStepTracking.percent(errors.optimal),
                        TextFormatting.significant(PowerStepTracking.errorRatio(run.measurements)),
                        TextFormatting.significant(PowerStepTracking.errorRatio(late))]
            }))
        for rank in Set(runs.map(\.variant.rank)).sorted() {
            let series = runs.filter { $0.variant.rank == rank }.map { run in
                let steps = Set(run.measurements.map(\.step)).sorted()
                let points = steps.map { step in
                    (Double(step), PowerStepTracking.errorRatio(run.measurements.filter { $0.step == step }))
                }
                return LineChart.Series(name: "k=\(run.variant.powerIterations), warm start \(run.variant.warmStart ? "on" : "off")",
                                        points: points, dashed: !run.variant.warmStart)
            }
            report.charts.append(LineChart(title: "Rank \(rank): PowerSGD's error over the exact SVD's, per step",
                                           x: .init("step", fromZero: true), y: .init("‖M̄ − P̂P̂ᵀM̄‖ / ‖M̄ − M̄ᵣ‖", scale: .logarithmic(base: 10)),
                                           series: series))
        }
        return report
    }

    /// The paragraph of measured findings: how much of the gap to the SVD each extra iteration
    /// closes, with and without warm start, and what it does to accuracy and bytes.
    static func findings(_ runs: [PowerStepTracking.Run]) -> String {
        var sentences: [String] = []
        for rank in Set(runs.map(\.variant.rank)).sorted() {
            for warm in [true, false] {
                let cell = runs.filter { $0.variant.rank == rank && $0.variant.warmStart == warm }
                    .sorted { $0.variant.powerIterations < $1.variant.powerIterations }
                guard cell.count > 1 else { continue }
                let ratios = cell.map { "k=\($0.variant.powerIterations): \(TextFormatting.significant(PowerStepTracking.errorRatio($0.measurements)))×" }
                let accuracies = cell.map { PowerStepTracking.percent($0.finalMetric) }
                sentences.append("Rank \(rank), warm start \(warm ? "on" : "off"): error over the SVD's \(ratios.joined(separator: ", ")); "
                                 + "accuracy \(accuracies.joined(separator: ", ")); bytes per step \(cell.map { TextFormatting.bytes($0.bytesPerStep) }.joined(separator: ", ")).")
            }
        }
        return sentences.joined(separator: " ")
    }
}
