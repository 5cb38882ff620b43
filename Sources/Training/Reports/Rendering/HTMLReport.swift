/// The comparison report as one self-contained HTML file: the settings, the comparison table,
/// and inline SVG charts (accuracy or perplexity vs projected time, vs bytes sent; loss vs step),
/// one line per reducer. No scripts, fonts or images from elsewhere; every text is escaped.
public struct HTMLReport: Sendable {
    public var title: String
    public var runs: [RunRecord]
    public var projection: ProjectionTarget
    /// Target accuracy (fraction) or perplexity for the time-to-target columns.
    public var target: Double?
    /// More charts to append (e.g. `ScalingSimulation.chart()`).
    public var extraCharts: [LineChart]
    /// The runs the per-run charts draw (default: all of them; the table always has every run).
    public var chartedRuns: [RunRecord]
    /// More tables, after the comparison table (e.g. `PrivacyBudgetTable`'s).
    public var extraTables: [StudyReport.Table]

    public init(title: String, runs: [RunRecord], projection: ProjectionTarget, target: Double? = nil,
                extraCharts: [LineChart] = [], extraTables: [StudyReport.Table] = []) {
        self.title = title
        self.runs = runs
        self.projection = projection
        self.target = target
        self.extraCharts = extraCharts
        self.extraTables = extraTables
        chartedRuns = runs
    }

    /// The charts of the report, in order.
    public var charts: [LineChart] {
        var charts: [LineChart] = []
        for metric in [EvaluationPart.Metric.accuracy, .perplexity] {
            let evaluated = chartedRuns.filter { $0.metric == metric }
            guard !evaluated.isEmpty else { continue }
            let yAxis = LineChart.Axis(metric.rawValue, format: metric == .accuracy ? .percent : .number)
            charts.append(LineChart(
                title: "Test \(metric.rawValue) vs projected training time (\(projection.label))",
                x: .init("projected training time (\(projection.label))", format: .seconds, fromZero: true), y: yAxis,
                series: evaluated.map { run in
                    LineChart.Series(name: run.settings.reducer, points: run.evaluations.map {
                        (run.projectedElapsed(beforeStep: $0.step, on: projection), $0.value)
                    }, markers: true)
                }))
            charts.append(LineChart(
                title: "Test \(metric.rawValue) vs bytes sent per worker",
                x: .init("cumulative bytes sent per worker (W as measured, log scale)",
                         scale: .logarithmic(base: 10), format: .bytes), y: yAxis,
                series: evaluated.map { run in
                    LineChart.Series(name: run.settings.reducer,
                                     points: run.evaluations.map { (Double($0.cumulativeBytesSent), $0.value) },
                                     markers: true)
                }))
        }
        charts.append(LineChart(
            title: "Training loss vs step", x: .init("step", fromZero: true), y: .init("training loss", fromZero: true),
            series: chartedRuns.map { run in
                LineChart.Series(name: run.settings.reducer, points: run.steps.map { (Double($0.step), $0.loss) })
            }))
        return charts + extraCharts
    }

    /// The whole HTML document.
    public func html() -> String {
        let esc = TextFormatting.html
        let table = ComparisonTable(runs: runs, projection: projection, target: target)
        var out = Self.pageStart(title: title)
        out += "<p>" + settingsSummary().map(esc).joined(separator: "<br>\n") + "</p>\n"
        out += "<table>\n<thead><tr>" + table.markdownHeader.map { "<th>\(esc($0))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
        for cells in table.displayRows() {
            out += "<tr>" + cells.map { "<td>\(esc($0))</td>" }.joined() + "</tr>\n"
        }
        out += "</tbody>\n</table>\n"
        for table in extraTables { out += table.html() }
        for chart in charts { out += "<figure>\n" + chart.svg() + "</figure>\n" }
        out += """
        <p class="notes">Projected time = compute + compression + optimizer time as measured, plus the α–β network
        model's time of each step's collectives on \(esc(projection.label)); computation and communication are
        assumed not to overlap. Time to target is the training time before the first evaluation reaching the
        target (no interpolation between evaluations). Bytes sent are per worker at the measured worker count.</p>
        </body>
        </html>

        """
        return out
    }

    private func settingsSummary() -> [String] {
        func distinct(_ values: [String]) -> String { Array(Set(values)).sorted().joined(separator: ", ") }
        var lines = ["Model: \(distinct(runs.map(\.settings.model))); dataset: \(distinct(runs.map(\.settings.dataset)))",
                     "Measured with \(distinct(runs.map { String($0.settings.workers) })) workers; "
                     + "projection: \(projection.label) (\(projection.model.description))"]
        for run in runs where !run.settings.reducerOptions.isEmpty {
            lines.append("\(run.settings.reducer): " + run.settings.reducerOptions.sorted { $0.key < $1.key }
                .map { "\($0.key)=\($0.value)" }.joined(separator: ", "))
        }
        return lines
    }
}

extension HTMLReport {
    /// The start of a self-contained report page up to its heading: the title, and the one
    /// stylesheet every HTML report of the project uses (tables, captions, figures, notes).
    public static func pageStart(title: String) -> String {
        let esc = TextFormatting.html
        return """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <title>\(esc(title))</title>
        <style>
        body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1100px; }
        table { border-collapse: collapse; margin: 12px 0 24px; font-size: 13px; }
        th, td { border: 1px solid #bbb; padding: 4px 8px; text-align: right; }
        th:first-child, td:first-child { text-align: left; }
        th { background: #f0f0f0; }
        caption { text-align: left; font-weight: bold; padding: 4px 0; }
        figure { margin: 16px 0; }
        .notes { font-size: 13px; color: #444; }
        </style>
        </head>
        <body>
        <h1>\(esc(title))</h1>

        """
    }
}
