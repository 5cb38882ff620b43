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
        subcommands: [QSGDBoundsCommand.self])
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
