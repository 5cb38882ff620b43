import ArgumentParser
import Foundation
import GradientCompression
import Collectives
import Training

/// `powersgd dp-error`: DP-SGD runs of several reducers on the same lots and seed, measuring at
/// every step how far the applied update is from the clean average and how much of that is the
/// noise and how much the compression (`PrivateAggregateErrorProbe`).
struct DPErrorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dp-error",
        abstract: "Per-step error of each reducer's output under --dp against the clean average, split into noise and compression.",
        discussion: """
        Prints a Markdown table (per reducer: accuracy, ε, and the means over steps of ‖n̄‖², ‖R − ĝ‖², \
        2⟨n̄, R − ĝ⟩ and ‖R − ḡ‖² relative to ‖ḡ‖², the fraction of the noise removed and of the signal kept) \
        and with --json writes every step's numbers. docs/privacy.md explains the split.
        """)

    @OptionGroup var settings: TrainingArguments

    @Option(help: "Comma-separated reducers with their options, run in this order.")
    var reducers = "sgd,powersgd:rank=1,powersgd:rank=4,topk:ratio=0.01"

    @Option(help: "Write every run's per-step split as JSON to this file.")
    var json: String?

    func validate() throws {
        guard settings.backend == .threads else { throw ValidationError("--backend: dp-error runs its workers as threads (got \(settings.backend))") }
        guard try settings.privacySettings() != nil else { throw ValidationError("--dp is required: the split is of a DP run") }
        for (specification, name) in try parseReducerList(reducers, flag: "--reducers", seed: settings.seed)
        where (try? ReducerCatalog.make(specification, seed: settings.seed))?.appliesMomentum == true {
            throw ValidationError("--reducers: \(name) carries momentum in its output, and the split compares the output with "
                                  + "one step's average gradient; measure it without worker-momentum (dgc and signum: not at all)")
        }
    }

    func run() throws {
        let experiment = try Experiment(settings.experimentConfiguration)
        try settings.checkFeasible(experiment)
        var runs: [PrivateAggregateErrorRun] = []
        for (specification, name) in try parseReducerList(reducers, flag: "--reducers", seed: settings.seed) {
            _ = try checkPrivacy(experiment.configuration.dp!, experiment: experiment, reducer: specification.name,
                                 workers: settings.workers)
            FileHandleStandardError.write("dp-error: \(name)…\n")
            do {
                runs.append(try PrivateAggregateErrorRun.measure(experiment: experiment, reducer: specification,
                                                                 workers: settings.workers,
                                                                 collectiveTimeout: settings.collectiveTimeoutSeconds))
            } catch let error as WorkerError {
                throw RuntimeError("worker \(error.rank): \(error.underlying)", isUsageError: isUsageError(error.underlying))
            }
        }
        print("| reducer | accuracy | ε | σ | noise ‖n̄‖² | compression ‖R−ĝ‖² | 2⟨n̄, R−ĝ⟩ | total ‖R−ḡ‖² | noise removed | signal kept |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in runs {
            print(String(format: "| %@ | %.2f %% | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %@ | %.3f |", r.reducer, r.accuracy * 100,
                         r.epsilon, r.noise, r.meanNoiseRelative, r.meanCompressionRelative, r.meanCrossRelative, r.meanTotalRelative,
                         r.meanNoiseRemoved.map { String(format: "%.3f", $0) } ?? "–", r.meanSignalKept))
        }
        print("(squared norms relative to the clean average's ‖ḡ‖², means over the \(runs.first?.steps.count ?? 0) steps)")
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            try writeOutputFile(try encoder.encode(runs), to: URL(fileURLWithPath: json))
        }
    }
}
