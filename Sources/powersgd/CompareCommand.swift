import ArgumentParser
import CollectivesMPI
import Foundation
import GradientCompression
import Training

/// `powersgd compare`: several reducers on the same model, data, seed and workers, one after
/// the other; writes the comparison table (Markdown and CSV), the HTML report with its SVG charts,
/// and every run's JSON-lines log (which `powersgd simulate --from-log` reads).
struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "compare",
        abstract: "Run several reducers on the same model, data and seed; write a table (Markdown, CSV) and an HTML report.",
        discussion: """
        Writes into --output-dir: comparison.md, comparison.csv, report.html (charts: accuracy or \
        perplexity vs projected time and vs bytes sent, loss vs step) and runs.jsonl (the runs' logs). \
        Projected times are for --project-workers workers on --network. With --dp-budgets (and --seeds) \
        every reducer runs at every privacy budget (and seed), and accuracy-vs-epsilon.md, .csv and .svg hold \
        the final accuracy against ε per reducer, also as a table and a chart in report.html.
        """)

    @OptionGroup var settings: TrainingArguments

    @Option(help: "Comma-separated reducers with their options, run in this order (an option 'key=value' after a comma belongs to the reducer before it).")
    var reducers = "sgd,powersgd:rank=1,powersgd:rank=2,qsgd:levels=64,topk:ratio=0.01,signum"

    @Option(help: "Target accuracy (a fraction, e.g. 0.85) or perplexity for the time-to-target columns (default: 95% of the best final accuracy, or 105% of the best perplexity).")
    var target: Double?

    @Option(help: "Directory for comparison.md, comparison.csv, report.html and runs.jsonl (created if missing).")
    var outputDir = "compare-output"

    @Option(help: "Title of the HTML report (default: model, dataset and workers).")
    var title: String?

    @Option(help: ArgumentHelp("With --dp: run every reducer at each of these target ε, comma-separated, 'none' for a run without DP (e.g. 1,3,8,none); each replaces --dp's noise or epsilon, the clip, delta and placement stay. Writes accuracy-vs-epsilon.md, .csv and .svg.", valueName: "budgets"))
    var dpBudgets: String?

    @Option(help: ArgumentHelp("Repeat every run for each of these seeds (initialization, data order, lots, noise and the reducers' seeds); replaces --seed. Tables give the mean and spread; the per-run charts show the first seed's runs.", valueName: "seeds"))
    var seeds: String?

    func validate() throws {
        let parsed = try parsedReducers()
        for reducer in parsed { try settings.checkOverlap(reducer.specification) }
        _ = try parsedBudgets()
        _ = try parsedSeeds()
        let names = parsed.map(\.name)
        if let repeated = names.first(where: { name in names.filter { $0 == name }.count > 1 }) {
            throw ValidationError("--reducers names \(repeated) twice; each reducer may appear once")
        }
        if let target {
            if settings.model.isLanguageModel {
                guard target.isFinite, target >= 1 else {
                    throw ValidationError("--target is a perplexity for \(settings.model), 1 or more (got \(target))")
                }
            } else {
                guard target > 0, target <= 1 else {
                    throw ValidationError("--target is an accuracy for \(settings.model), a fraction in (0, 1] (got \(target))")
                }
            }
        }
    }

    func parsedReducers(seed: UInt64? = nil) throws -> [(specification: ReducerSpecification, name: String)] {
        try parseReducerList(reducers, flag: "--reducers", seed: seed ?? settings.seed)
    }

    /// `--dp-budgets`: the target ε of each sweep point, nil for the run without DP; nil without the flag.
    func parsedBudgets() throws -> [Double?]? {
        guard let dpBudgets else { return nil }
        guard settings.dp != nil else {
            throw ValidationError("--dp-budgets needs --dp for the clip norm, delta and placement (e.g. --dp epsilon=1,clip=1.0,delta=1e-5)")
        }
        let budgets: [Double?] = try dpBudgets.split(separator: ",", omittingEmptySubsequences: false).map { item in
            let text = item.trimmingCharacters(in: .whitespaces)
            if text == "none" { return nil }
            guard let epsilon = Double(text), epsilon.isFinite, epsilon > 0 else {
                throw ValidationError("--dp-budgets \(dpBudgets): '\(text)' is neither a positive ε nor 'none'")
            }
            return epsilon
        }
        for (index, budget) in budgets.enumerated() where budgets[..<index].contains(budget) {
            throw ValidationError("--dp-budgets \(dpBudgets) names \(budget.map { "ε = \($0)" } ?? "none") twice")
        }
        return budgets
    }

    /// `--seeds`, or `--seed` alone.
    func parsedSeeds() throws -> [UInt64] {
        guard let seeds else { return [settings.seed] }
        let values = seeds.split(separator: ",", omittingEmptySubsequences: false).map { UInt64($0.trimmingCharacters(in: .whitespaces)) }
        guard values.allSatisfy({ $0 != nil }) else { throw ValidationError("--seeds \(seeds): expected comma-separated whole numbers, 0 or more") }
        let unique = values.map { $0! }
        guard Set(unique).count == unique.count else { throw ValidationError("--seeds \(seeds) names a seed twice") }
        return unique
    }

    /// One sweep point: the seed and, with --dp-budgets, the budget (`.some(nil)`: without DP).
    struct SweepPoint {
        var seed: UInt64
        var budget: Double??
        /// How a run at this point is told apart from the others in the tables, charts and log.
        func label(_ reducer: String, seeds: Int) -> String {
            var parts = [reducer]
            if let budget { parts.append(budget.map { "ε=\(String(format: "%g", $0))" } ?? "no DP") }
            if seeds > 1 { parts.append("seed \(seed)") }
            return parts.joined(separator: " · ")
        }
    }

    func run() throws {
        let budgets = try parsedBudgets(), seeds = try parsedSeeds()
        let points = seeds.flatMap { seed in (budgets ?? [nil]).map { SweepPoint(seed: seed, budget: budgets == nil ? nil : .some($0)) } }
        let privacy = try settings.privacySettings()
        // One experiment per sweep point, sharing the data: the seed and the DP budget are part of its configuration.
        let base = try Experiment(settings.experimentConfiguration)
        try settings.checkFeasible(base)
        let experiments = try points.map { point in
            try base.reconfigured { configuration in
                configuration.seed = point.seed
                if let budget = point.budget {
                    configuration.dp = budget.flatMap { epsilon in privacy.map { var dp = $0; dp.noise = .targetEpsilon(epsilon); return dp } }
                }
            }
        }
        let specifications = try Dictionary(uniqueKeysWithValues: seeds.map { ($0, try parsedReducers(seed: $0).map(\.specification)) })
        let output = TerminalOutput()
        let directory = URL(fileURLWithPath: outputDir)
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw RuntimeError("--output-dir \(outputDir): cannot create the directory (\(error.localizedDescription))")
        }
        let reducerCount = specifications[seeds[0]]!.count, count = points.count * reducerCount
        if settings.backend == .threads {
            output.line("powersgd compare: \(settings.model) on \(base.dataDescription); \(TextFormatting.counted(settings.workers, "worker")) (threads); "
                        + "\(reducerCount) reducers" + (count > reducerCount ? ", \(count) runs" : ""))
        }
        let interrupt = InterruptReport(reports: settings.backend == .threads) { at, label in
            "\(at) of \(label); compare writes its files when every run has finished, so \(outputDir) holds no "
                + "report of this invocation (a compare cannot be resumed: run it again, or leave out the reducers "
                + "that finished)"
        }
        // One group for all runs: an MPI job can initialise MPI only once.
        let results = try runWorkers(settings: settings) { group -> [RunRecord] in
            if group.rank == 0 { interrupt.reportHere() }
            // Time to target needs evaluations during training, not only at the end: unless the
            // user chose --evaluate-every, evaluate about 8 times per run.
            let evaluateEvery = settings.evaluateEvery > 0 ? settings.evaluateEvery
                : max(1, try base.schedule(workers: group.size).totalSteps / 8)
            var runs: [RunRecord] = []
            for (pointIndex, point) in points.enumerated() {
                for specification in specifications[point.seed]! {
                    // The reducer's name, as the tables and runs.jsonl write it (the seed is not part of it).
                    let label = point.label(try ReducerCatalog.make(specification, seed: 0).name, seeds: seeds.count)
                    if group.rank == 0 { interrupt.begin("\(label) (run \(runs.count + 1) of \(count))") }
                    var session = try TrainingSession(experiment: experiments[pointIndex], reducer: specification, network: settings.network,
                                                      projectedWorkers: settings.projectWorkers)
                    session.evaluateEvery = evaluateEvery
                    session.overlapBucketBytes = settings.overlapBucketBytes
                    if group.rank == 0 { output.line("\(label):") }
                    let progress = TerminalOutput()
                    let result = try session.run(group: group, onStep: { record, total in
                        interrupt.completed(steps: record.step + 1)
                        progress.progress(step: record.step + 1, total: total, epoch: record.epoch, loss: record.loss,
                                        examples: settings.batchSize * group.size)
                    }, onEvaluation: { record in
                        progress.line(String(format: "  evaluation after step %d: %@ %.4f", record.step,
                                           record.metric.rawValue, record.value))
                        progress.evaluationFinished()
                    })
                    runs.append(result.run)
                }
            }
            return runs
        }
        // On MPI ranks other than 0 the records are empty: only rank 0 writes the report.
        guard let runs = results.first, runs.allSatisfy({ !$0.steps.isEmpty }) else { return }
        let pointOfRun = points.flatMap { Array(repeating: $0, count: reducerCount) }
        try writeReport(runs: runs, points: pointOfRun, seeds: seeds, into: directory, output: output)
    }

    private func writeReport(runs plainRuns: [RunRecord], points: [SweepPoint], seeds: [UInt64], into directory: URL,
                             output: TerminalOutput) throws {
        let projection = try ProjectionTarget(network: settings.network, workers: settings.projectWorkers)
        // Runs at several budgets or seeds carry them in their names.
        let runs = zip(plainRuns, points).map { run, point in
            var labelled = run
            labelled.settings.reducer = point.label(run.settings.reducer, seeds: seeds.count)
            return labelled
        }
        let target = self.target ?? ComparisonTable.suggestedTarget(for: runs)
        let table = ComparisonTable(runs: runs, projection: projection, target: target)
        let title = self.title ?? "\(settings.model) on \(settings.dataset), \(TextFormatting.counted(runs[0].settings.workers, "worker"))"
        var report = HTMLReport(title: title, runs: runs, projection: projection, target: target)
        report.chartedRuns = zip(runs, points).filter { $0.1.seed == seeds[0] }.map(\.0)
        var privacyFiles: [(String, String)] = []
        if points.contains(where: { $0.budget != nil }), let metric = runs[0].metric {
            let budgets = PrivacyBudgetTable(entries: zip(plainRuns, points).compactMap { run, point in
                run.finalEvaluation.map { PrivacyBudgetTable.Entry(reducer: run.settings.reducer, budget: point.budget ?? nil, seed: point.seed,
                                                                   finalValue: $0.value, epsilonSpent: run.steps.last?.epsilon) }
            }, metric: metric)
            report.extraTables = [budgets.studyTable]
            report.extraCharts = [budgets.chart()]
            privacyFiles = [("accuracy-vs-epsilon.md", budgets.markdown()), ("accuracy-vs-epsilon.csv", budgets.csv()),
                            ("accuracy-vs-epsilon.svg", budgets.chart().svg())]
        }
        let log = try runs.flatMap(RunLog.lines(of:)).map(RunLog.encode).joined(separator: "\n") + "\n"
        let markdown = table.markdown()
        let files = [("comparison.md", markdown), ("comparison.csv", table.csv()),
                     ("report.html", report.html()), ("runs.jsonl", log)] + privacyFiles
        for (name, text) in files { try writeOutputFile(Data(text.utf8), to: directory.appendingPathComponent(name)) }
        output.line("")
        output.line(markdown)
        for (name, text) in privacyFiles where name.hasSuffix(".md") { output.line(text) }
        if let target, self.target == nil, let metric = runs[0].metric {
            output.line("Time to target: the target \(TextFormatting.metric(target, metric)) is the default (95% of the best final accuracy, "
                        + "or 105% of the best perplexity); set --target to choose.")
        }
        output.line("Wrote \(files.map { directory.appendingPathComponent($0.0).path }.joined(separator: ", "))")
    }
}
