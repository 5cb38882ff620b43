import ArgumentParser
import Foundation
import Training

/// `powersgd study NAME`: the experiments the seed papers' reviewers asked for, each writing its
/// report (HTML, Markdown) and the numbers behind it (CSV) into its own directory. Every study has
/// a short mode (`--short`, minutes or less) and its full mode. Findings: docs/studies.md.
struct StudyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "study",
        abstract: "Reproducible studies of the compressors' claims; each writes a report and its CSV.",
        subcommands: [QSGDBoundsCommand.self, PowerIterationsCommand.self, SubspaceAnglesCommand.self,
                      PowerSGDCounterexampleCommand.self])
}

/// The files a study writes, into a directory created if missing.
struct StudyOutput {
    let directory: URL

    init(path: String) throws {
        directory = URL(fileURLWithPath: path)
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw RuntimeError("--output-dir \(path): cannot create the directory (\(OutputPaths.reason(error)))")
        }
    }

    /// Writes the report as report.html and report.md, the CSV, and prints the Markdown.
    func write(_ report: StudyReport, csv: String, output: TerminalOutput) throws {
        let files = [("report.html", report.html()), ("report.md", report.markdown()), ("results.csv", csv)]
        for (name, text) in files { try writeOutputFile(Data(text.utf8), to: directory.appendingPathComponent(name)) }
        output.line(report.markdown())
        output.line("Wrote \(files.map { directory.appendingPathComponent($0.0).path }.joined(separator: ", "))")
    }
}

struct QSGDBoundsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qsgd-bounds",
        abstract: "QSGD's expected non-zeros and variance against Lemma 3.1's bounds (L2 and max-norm scale).",
        discussion: """
        Quantizes test vectors (gaussian, equal-magnitude, sparse, spike, heavy-tailed; n = 256, 4096, 65536) \
        to s = 1 … 256 levels as one bucket, many times, through the shipped encoder and decoder, and compares \
        the measured means with their closed forms and with the bounds s(s+√n) and min(n/s², √n/s)·‖v‖². \
        Full mode ~1 minute on 2 cores; --short a few seconds.
        """)

    @Flag(help: "Two sizes (256, 4096), four level counts and 50 trials.")
    var short = false

    @Option(help: "Independent quantizations per cell (default 200; 50 with --short).")
    var trials: Int?

    @Option(help: "Seed of the test vectors and of the quantizer's randomness.")
    var seed: UInt64 = 0

    @Option(help: "Directory for report.html, report.md and results.csv (created if missing).")
    var outputDir = "study-qsgd-bounds"

    func validate() throws {
        if let trials, trials < 2 { throw ValidationError("--trials \(trials): need at least 2 to estimate a standard error") }
    }

    func run() throws {
        var study = short ? QSGDBoundsStudy.short : QSGDBoundsStudy()
        if let trials { study.trials = trials }
        study.seed = seed
        let output = TerminalOutput()
        let files = try StudyOutput(path: outputDir)
        var lastDistribution = ""
        let rows = try study.run { row in
            if row.distribution != lastDistribution { output.line("measuring \(row.distribution) vectors"); lastDistribution = row.distribution }
        }
        try files.write(QSGDBoundsStudy.report(rows), csv: QSGDBoundsStudy.csv(rows), output: output)
    }
}

/// The training options the PowerSGD tracking studies share.
struct TrackingArguments: ParsableArguments {
    @Flag(help: "A tenth of an epoch instead of one (seconds on the MLP).")
    var short = false

    @Option(help: "mlp (784–256–10) or resnet8, on Fashion-MNIST with 2 workers.")
    var model = ExperimentConfiguration.Model.mlp

    @Option(help: "Epochs (default 1; 0.1 with --short).")
    var epochs: Double?

    @Option(help: "Steps between subspace measurements (an exact SVD per compressed layer; default 10, 2 with --short).")
    var probeEvery: Int?

    @Option(help: "Seed of the model, the data order and PowerSGD's shared randomness.")
    var seed: UInt64 = 1

    func validate() throws {
        guard [.mlp, .resnet8].contains(model) else { throw ValidationError("--model \(model): expected mlp or resnet8") }
        if let epochs, !(epochs > 0 && epochs <= 100) { throw ValidationError("--epochs \(epochs): expected a number in (0, 100]") }
        if let probeEvery, probeEvery < 1 { throw ValidationError("--probe-every \(probeEvery): expected at least 1") }
    }

    func tracking(_ variants: [PowerStepTracking.Variant], schedule: ExperimentConfiguration.Schedule) -> PowerStepTracking {
        let configuration = PowerStepTracking.configuration(model: model, epochs: epochs ?? (short ? 0.1 : 1), schedule: schedule, seed: seed)
        return PowerStepTracking(configuration: configuration, workers: 2, variants: variants, probePeriod: probeEvery ?? (short ? 2 : 10))
    }

    func run(_ tracking: PowerStepTracking, outputDir: String,
             report: ([PowerStepTracking.Run], ExperimentConfiguration) -> StudyReport) throws {
        let output = TerminalOutput()
        let files = try StudyOutput(path: outputDir)
        let runs = try tracking.run { run in
            output.line("\(run.reducer): \(run.measurements.count) measurements, final accuracy \(String(format: "%.4f", run.finalMetric))")
        }
        try files.write(report(runs, tracking.configuration), csv: PowerStepTracking.csv(runs), output: output)
    }
}

struct PowerIterationsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "power-iterations",
        abstract: "PowerSGD with k = 1, 2, 4 power iterations, warm start on and off, ranks 1, 2, 4: error against the exact SVD's, accuracy.",
        discussion: """
        Trains the model once per variant (18 by default) with the same seed and measures, every --probe-every steps, \
        each compressed layer's PowerSGD approximation of the averaged error-corrected gradient against its exact \
        rank-r truncation. MLP, one epoch: about 2 minutes on 2 shared cores; --short under a minute.
        """)

    @OptionGroup var tracking: TrackingArguments

    @Option(help: "Ranks, comma-separated.")
    var ranks = "1,2,4"

    @Option(help: "Power iterations k, comma-separated.")
    var iterations = "1,2,4"

    @Option(help: "Directory for report.html, report.md and results.csv (created if missing).")
    var outputDir = "study-power-iterations"

    func validate() throws {
        _ = try integers(ranks, "--ranks", 1...64)
        _ = try integers(iterations, "--iterations", 1...64)
    }

    func run() throws {
        let variants = PowerIterationStudy.variants(ranks: try integers(ranks, "--ranks", 1...64),
                                                    iterations: try integers(iterations, "--iterations", 1...64))
        try tracking.run(tracking.tracking(variants, schedule: .cosine), outputDir: outputDir, report: PowerIterationStudy.report)
    }
}

struct SubspaceAnglesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subspace-angles",
        abstract: "Per layer over training: the angle between PowerSGD's P̂ and the top-r singular vectors of the averaged gradient.",
        discussion: """
        Trains the model with PowerSGD (one warm-started power step) at each rank under a step schedule (×0.1 at \
        1/2 and 3/4 of the steps) and measures every --probe-every steps the largest principal angle per compressed \
        layer. MLP, one epoch: about a minute on 2 shared cores (ResNet-8, half an epoch: about 5); --short seconds.
        """)

    @OptionGroup var tracking: TrackingArguments

    @Option(help: "Ranks, comma-separated.")
    var ranks = "1,2,4"

    @Option(help: "Directory for report.html, report.md and results.csv (created if missing).")
    var outputDir = "study-subspace-angles"

    func validate() throws { _ = try integers(ranks, "--ranks", 1...64) }

    func run() throws {
        let variants = SubspaceAngleStudy.variants(ranks: try integers(ranks, "--ranks", 1...64))
        try tracking.run(tracking.tracking(variants, schedule: .step), outputDir: outputDir, report: SubspaceAngleStudy.report)
    }
}

struct PowerSGDCounterexampleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "powersgd-counterexample",
        abstract: "A quadratic where PowerSGD (rank 1, error feedback) stalls and PowerSGD+ and the exact SVD converge.",
        discussion: """
        Gradient descent on f(X) = ½‖X‖² + c·x₀₀·x₁₁ (8×8) from a start where the gradient is one entry, with each \
        reducer at rank 1; then PowerSGD and the SVD from starts perturbed by δ. Distance to the optimum per step in \
        results.csv. Well under a second (--short: 300 steps instead of 2000).
        """)

    @Flag(help: "300 steps instead of 2000.")
    var short = false

    @Option(help: "Gradient-descent steps (default 2000; 300 with --short).")
    var steps: Int?

    @Option(help: "PowerSGD+'s refresh period.")
    var period = 20

    @Option(help: "PowerSGD's seed (its Q₀).")
    var seed: UInt64 = 0

    @Option(help: "Directory for report.html, report.md and results.csv (created if missing).")
    var outputDir = "study-powersgd-counterexample"

    func validate() throws {
        if let steps, !(1...1_000_000).contains(steps) { throw ValidationError("--steps \(steps): expected 1 to 1000000") }
        if period < 1 { throw ValidationError("--period \(period): expected at least 1") }
    }

    func run() throws {
        var study = short ? PowerSGDCounterexample.short : PowerSGDCounterexample()
        if let steps { study.steps = steps }
        study.period = period
        study.seed = seed
        let files = try StudyOutput(path: outputDir)
        let runs = try study.run()
        try files.write(study.report(runs), csv: PowerSGDCounterexample.csv(runs), output: TerminalOutput())
    }
}
