import Foundation

/// Final accuracy (or perplexity) against the privacy budget, per reducer: the table and chart of
/// `powersgd compare --dp-budgets`, which runs every reducer at every target ε (and without DP)
/// for every seed.
///
/// A cell is the mean over the seeds, the sample standard deviation when there are two or more,
/// and, for every reducer but `sgd`, the difference to `sgd`'s mean at the same budget: whether
/// compression's penalty shrinks under DP is read off that difference across a row.
public struct PrivacyBudgetTable: Sendable {
    /// One run's outcome. `budget` is the target ε, nil for the run without DP.
    public struct Entry: Sendable, Equatable {
        public var reducer: String
        public var budget: Double?
        public var seed: UInt64
        public var finalValue: Double
        /// The ε the run had spent when it ended (≤ the target), nil without DP.
        public var epsilonSpent: Double?
        public init(reducer: String, budget: Double?, seed: UInt64, finalValue: Double, epsilonSpent: Double?) {
            self.reducer = reducer
            self.budget = budget
            self.seed = seed
            self.finalValue = finalValue
            self.epsilonSpent = epsilonSpent
        }
    }

    /// Mean, spread and the difference to the baseline reducer of one (reducer, budget).
    public struct Cell: Sendable, Equatable {
        public var mean: Double
        /// Sample standard deviation over the seeds; nil for one seed.
        public var standardDeviation: Double?
        public var seeds: Int
        /// mean − the baseline's mean at the same budget; nil for the baseline or without one.
        public var differenceToBaseline: Double?
    }

    public var entries: [Entry]
    public var metric: EvaluationPart.Metric
    /// The reducer every other is compared with at each budget.
    public var baseline = "sgd"

    public init(entries: [Entry], metric: EvaluationPart.Metric) {
        self.entries = entries
        self.metric = metric
    }

    /// The reducers in the order of their first run.
    public var reducers: [String] {
        var seen: [String] = []
        for entry in entries where !seen.contains(entry.reducer) { seen.append(entry.reducer) }
        return seen
    }

    /// The budgets, smallest ε first, the run without DP (nil) last.
    public var budgets: [Double?] {
        let finite = Set(entries.compactMap(\.budget)).sorted()
        return finite + (entries.contains { $0.budget == nil } ? [nil] : [])
    }

    public func cell(_ reducer: String, _ budget: Double?) -> Cell? {
        guard let values = Self.values(entries, reducer, budget) else { return nil }
        let mean = Self.mean(values)
        let deviation: Double? = values.count < 2 ? nil
            : (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count - 1)).squareRoot()
        let difference = reducer == baseline ? nil : Self.values(entries, baseline, budget).map { mean - Self.mean($0) }
        return Cell(mean: mean, standardDeviation: deviation, seeds: values.count, differenceToBaseline: difference)
    }

    private static func values(_ entries: [Entry], _ reducer: String, _ budget: Double?) -> [Double]? {
        let values = entries.filter { $0.reducer == reducer && $0.budget == budget }.map(\.finalValue)
        return values.isEmpty ? nil : values
    }

    private static func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(values.count) }

    static func budgetTitle(_ budget: Double?) -> String { budget.map { "ε = \(String(format: "%g", $0))" } ?? "no DP" }

    /// Accuracies in percent (two decimals), perplexities as they are.
    private func shown(_ value: Double) -> String {
        metric == .accuracy ? String(format: "%.2f", value * 100) : String(format: "%.2f", value)
    }

    /// The header and rows in display form (`80.08 ± 0.21 (-2.65)`), unescaped.
    public func displayRows() -> (header: [String], rows: [[String]]) {
        let header = ["reducer"] + budgets.map(Self.budgetTitle)
        let rows = reducers.map { reducer in
            [reducer] + budgets.map { budget in
                guard let c = cell(reducer, budget) else { return "–" }
                var text = shown(c.mean)
                if let sd = c.standardDeviation { text += " ± " + shown(sd) }
                if let d = c.differenceToBaseline { text += " (" + (d >= 0 ? "+" : "") + shown(d) + ")" }
                return text
            }
        }
        return (header, rows)
    }

    /// What the cells mean, for the line under the table.
    public var caption: String {
        let seeds = Set(entries.map(\.seed)).count
        let unit = metric == .accuracy ? "test accuracy in %" : "test perplexity"
        return "\(unit), mean" + (seeds > 1 ? " ± standard deviation over \(seeds) seeds" : " (1 seed)")
            + "; in brackets: minus \(baseline)'s mean at the same budget"
    }

    /// The table for a report page.
    public var studyTable: StudyReport.Table {
        let (header, rows) = displayRows()
        return StudyReport.Table(caption: "Final \(metric.rawValue) against the privacy budget (\(caption))", header: header, rows: rows)
    }

    public func markdown() -> String {
        let (header, rows) = displayRows()
        return TextFormatting.markdownTable(header: header, rows: rows) + "\n(\(caption))\n"
    }

    /// One line per run: raw numbers, `budget` empty for the run without DP.
    public func csv() -> String {
        TextFormatting.csvTable(header: ["reducer", "budget_epsilon", "seed", "metric", "final_value", "epsilon_spent"],
                                rows: entries.map { e in
            [e.reducer, e.budget.map(TextFormatting.csvNumber) ?? "", String(e.seed), metric.rawValue,
             TextFormatting.csvNumber(e.finalValue), e.epsilonSpent.map(TextFormatting.csvNumber) ?? ""]
        })
    }

    /// The mean per reducer against the target ε (log scale); the runs without DP have no place on
    /// that axis and are in the table.
    public func chart() -> LineChart {
        let finite = budgets.compactMap { $0 }
        let series = reducers.map { reducer in
            LineChart.Series(name: reducer, points: finite.compactMap { b in cell(reducer, b).map { (b, $0.mean) } }, markers: true)
        }
        return LineChart(title: "Test \(metric.rawValue) vs privacy budget",
                         x: .init("target ε (log scale)", scale: .logarithmic(base: 10)),
                         y: .init(metric.rawValue, format: metric == .accuracy ? .percent : .number), series: series)
    }
}
