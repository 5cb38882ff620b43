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
        Projected times are for --project-workers workers on --network.
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

    func validate() throws {
        let parsed = try parsedReducers()
        for reducer in parsed { try settings.checkOverlap(reducer.specification) }
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

    func parsedReducers() throws -> [(specification: ReducerSpecification, name: String)] {
        try parseReducerList(reducers, flag: "--reducers", seed: settings.seed)
    }

    func run() throws {
        let experiment = try Experiment(settings.experimentConfiguration)
        try settings.checkFeasible(experiment)
        let specifications = try parsedReducers().map(\.specification)
        let output = TerminalOutput()
        let directory = URL(fileURLWithPath: outputDir)
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw RuntimeError("--output-dir \(outputDir): cannot create the directory (\(error.localizedDescription))")
        }
        if settings.backend == .threads {
            output.line("powersgd compare: \(settings.model) on \(experiment.dataDescription); \(TextFormatting.counted(settings.workers, "worker")) (threads); "
                        + "\(specifications.count) reducers")
        }
        let count = specifications.count
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
                : max(1, try experiment.schedule(workers: group.size).totalSteps / 8)
            return try specifications.enumerated().map { index, specification in
                if group.rank == 0 { interrupt.begin("\(specification) (run \(index + 1) of \(count))") }
                var session = try TrainingSession(experiment: experiment, reducer: specification, network: settings.network,
                                                  projectedWorkers: settings.projectWorkers)
                session.evaluateEvery = evaluateEvery
                session.overlapBucketBytes = settings.overlapBucketBytes
                if group.rank == 0 { output.line("\(specification):") }
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
                return result.run
            }
        }
        // On MPI ranks other than 0 the records are empty: only rank 0 writes the report.
        guard let runs = results.first, runs.allSatisfy({ !$0.steps.isEmpty }) else { return }
        try writeReport(runs: runs, into: directory, output: output)
    }

    private func writeReport(runs: [RunRecord], into directory: URL, output: TerminalOutput) throws {
        let projection = try ProjectionTarget(network: settings.network, workers: settings.projectWorkers)
        let target = self.target ?? ComparisonTable.suggestedTarget(for: runs)
        let table = ComparisonTable(runs: runs, projection: projection, target: target)
        let title = self.title ?? "\(settings.model) on \(settings.dataset), \(TextFormatting.counted(runs[0].settings.workers, "worker"))"
        let report = HTMLReport(title: title, runs: runs, projection: projection, target: target)
        let log = try runs.flatMap(RunLog.lines(of:)).map(RunLog.encode).joined(separator: "\n") + "\n"
        let markdown = table.markdown()
        let files = [("comparison.md", markdown), ("comparison.csv", table.csv()),
                     ("report.html", report.html()), ("runs.jsonl", log)]
        for (name, text) in files { try writeOutputFile(Data(text.utf8), to: directory.appendingPathComponent(name)) }
        output.line("")
        output.line(markdown)
        if let target, self.target == nil, let metric = runs[0].metric {
            output.line("Time to target: the target \(TextFormatting.metric(target, metric)) is the default (95% of the best final accuracy, "
                        + "or 105% of the best perplexity); set --target to choose.")
        }
        output.line("Wrote \(files.map { directory.appendingPathComponent($0.0).path }.joined(separator: ", "))")
    }
}
