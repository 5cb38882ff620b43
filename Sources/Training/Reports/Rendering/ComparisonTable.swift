/// The table that compares reducers run on the same model, data and seed: one row per run.
///
/// Columns (both formats): reducer, metric, final value, payload bytes per worker per step,
/// bytes sent per worker per step (at the run's worker count), compression ratio, measured
/// seconds per step, projected seconds per step on `projection`, and, when a target is given,
/// the measured and projected training time until the first evaluation reaching it.
public struct ComparisonTable: Sendable {
    /// One run's row, as numbers (nil where not applicable: no evaluation, nothing sent, target not reached).
    public struct Row: Sendable, Equatable {
        public var reducer: String
        public var metric: EvaluationPart.Metric?
        public var finalValue: Double?
        public var payloadBytesPerStep: Double
        public var bytesSentPerStep: Double
        public var compressionRatio: Double?
        public var measuredSecondsPerStep: Double
        public var projectedSecondsPerStep: Double
        public var timeToTarget: TimeToTarget?
    }

    public var rows: [Row]
    public var projection: ProjectionTarget
    /// The accuracy (fraction) or perplexity the time-to-target columns are for; nil omits them.
    public var target: Double?

    public init(runs: [RunRecord], projection: ProjectionTarget, target: Double? = nil) {
        self.projection = projection
        self.target = target
        rows = runs.map { run in
            Row(reducer: run.settings.reducer, metric: run.metric, finalValue: run.finalEvaluation?.value,
                payloadBytesPerStep: run.payloadBytesPerStep, bytesSentPerStep: run.bytesSentPerStep,
                compressionRatio: run.compressionRatio, measuredSecondsPerStep: run.measuredSecondsPerStep,
                projectedSecondsPerStep: run.projectedSecondsPerStep(on: projection),
                timeToTarget: target.flatMap { run.timeToTarget($0, projection: projection) })
        }
    }

    /// The Markdown header cells.
    public var markdownHeader: [String] {
        var header = ["reducer", "metric", "final", "payload/worker/step", "sent/worker/step", "compression",
                      "measured time/step", "projected time/step (\(projection.label))"]
        if let target {
            let shown = rows.first?.metric.map { TextFormatting.metric(target, $0) } ?? "\(target)"
            header += ["time to \(shown) (measured)", "time to \(shown) (projected)"]
        }
        return header
    }

    /// The table in GitHub Markdown, human units (`1.23 MB`, `12.3 ms`, `87.50%`).
    public func markdown() -> String {
        TextFormatting.markdownTable(header: markdownHeader, rows: displayRows())
    }

    /// The cells of every row in human units, unescaped (Markdown and HTML escape them their way).
    func displayRows() -> [[String]] {
        rows.map { row in
            var cells = [row.reducer, row.metric?.rawValue ?? "—",
                         row.finalValue.flatMap { value in row.metric.map { TextFormatting.metric(value, $0) } } ?? "—",
                         TextFormatting.bytes(row.payloadBytesPerStep), TextFormatting.bytes(row.bytesSentPerStep),
                         row.compressionRatio.map { TextFormatting.significant($0) + "×" } ?? "—",
                         TextFormatting.seconds(row.measuredSecondsPerStep),
                         TextFormatting.seconds(row.projectedSecondsPerStep)]
            if target != nil {
                cells += [row.timeToTarget.map { TextFormatting.seconds($0.measuredSeconds) } ?? "not reached",
                          row.timeToTarget.map { TextFormatting.seconds($0.projectedSeconds) } ?? "not reached"]
            }
            return cells
        }
    }

    public static let csvHeader = [
        "reducer", "metric", "final_value", "payload_bytes_per_step", "bytes_sent_per_step", "compression_ratio",
        "measured_seconds_per_step", "projected_seconds_per_step", "network", "projected_workers",
        "target", "target_step", "time_to_target_measured_seconds", "time_to_target_projected_seconds",
    ]

    /// The table as CSV: raw numbers (bytes, seconds, fractions), empty fields where not applicable.
    public func csv() -> String {
        let number = { (value: Double?) in value.map(TextFormatting.csvNumber) ?? "" }
        return TextFormatting.csvTable(header: Self.csvHeader, rows: rows.map { row in
            [row.reducer, row.metric?.rawValue ?? "", number(row.finalValue),
             number(row.payloadBytesPerStep), number(row.bytesSentPerStep), number(row.compressionRatio),
             number(row.measuredSecondsPerStep), number(row.projectedSecondsPerStep),
             projection.network, String(projection.workers), number(target),
             row.timeToTarget.map { String($0.evaluation.step) } ?? "",
             number(row.timeToTarget?.measuredSeconds), number(row.timeToTarget?.projectedSeconds)]
        })
    }
}

extension ComparisonTable {
    /// The target `powersgd compare` uses when none is given: 95 % of the best final accuracy
    /// among the runs, or for perplexity 105 % of the best (lowest) final perplexity. A target
    /// relative to the best run lets a quick comparison ask "how long until close to the best any
    /// method got?"; runs that never get that close show "not reached". Nil when no run was
    /// evaluated, or the runs disagree on the metric.
    public static func suggestedTarget(for runs: [RunRecord]) -> Double? {
        let finals = runs.compactMap(\.finalEvaluation)
        guard let metric = finals.first?.metric, finals.allSatisfy({ $0.metric == metric }) else { return nil }
        switch metric {
        case .accuracy: return finals.map(\.value).max().map { 0.95 * $0 }
        case .perplexity: return finals.map(\.value).min().map { 1.05 * $0 }
        }
    }
}
