import Foundation
import GradientCompression
import Testing
import Training

/// The `powersgd` command end to end, as a user runs it: `compare` writes its table, CSV, HTML
/// report and logs; `simulate` projects from them; MPI ranks train like in-process workers;
/// bad input exits with 2 (usage, naming the flag) or 1 (runtime, naming the cause).
@Suite(.serialized) struct CommandLineTests {
    /// A quick setting: the MLP on Fashion-MNIST, 2 workers, a few steps.
    static let quick = ["--model", "mlp", "--dataset", "fashion-mnist", "--workers", "2", "--batch-size", "16"]

    @Test func compareWritesTableCSVReportAndLogsThatSimulateReads() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let outcome = try CommandRunner.run(["compare"] + Self.quick + [
            "--steps", "12", "--evaluate-every", "4", "--reducers", "sgd,powersgd:rank=2,topk:ratio=0.01",
            "--output-dir", directory.path])
        #expect(outcome.status == 0, "\(outcome.all)")
        let markdown = try String(contentsOf: directory.appendingPathComponent("comparison.md"), encoding: .utf8)
        let markdownRows = markdown.split(separator: "\n").filter { $0.hasPrefix("| ") }
        #expect(markdownRows.count == 1 + 3, "header and one row per reducer: \(markdown)")
        for reducer in ["| sgd |", "| powersgd(rank=2) |", "| topk(ratio=0.01,selection=exact,feedback=ef) |"] {
            #expect(markdown.contains(reducer), "\(markdown)")
        }
        #expect(markdown.contains("time to"), "the default target adds the time-to-target columns: \(markdown)")

        let csv = try String(contentsOf: directory.appendingPathComponent("comparison.csv"), encoding: .utf8)
        let csvLines = csv.split(separator: "\n")
        #expect(csvLines.count == 4)
        #expect(csvLines[0] == Substring(ComparisonTable.csvHeader.joined(separator: ",")))

        // The runs' logs: 12 steps and 3 evaluations each; PowerSGD sends less than SGD.
        let runs = try RunLog.read(directory.appendingPathComponent("runs.jsonl"))
        #expect(runs.map(\.settings.reducer) == ["sgd", "powersgd(rank=2)", "topk(ratio=0.01,selection=exact,feedback=ef)"])
        #expect(runs.allSatisfy { $0.steps.count == 12 && $0.evaluations.count == 3 })
        #expect(runs[1].payloadBytesPerStep * 10 < runs[0].payloadBytesPerStep)

        let html = try String(contentsOf: directory.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(html.components(separatedBy: "<svg").count - 1 == 3, "accuracy vs time, vs bytes, loss vs step")
        #expect(html.contains("powersgd(rank=2)"))
        // A real browser renders it: headless Chromium's screenshot is not blank.
        let check = try CommandRunner.runScript("scripts/check-report.sh",
                                                [directory.appendingPathComponent("report.html").path,
                                                 directory.appendingPathComponent("report.png").path])
        #expect(check.status == 0, "\(check.all)")

        let chart = directory.appendingPathComponent("speedup.svg"), profile = directory.appendingPathComponent("profile.json")
        let simulated = try CommandRunner.run(["simulate", "--from-log", directory.appendingPathComponent("runs.jsonl").path,
                                               "--networks", "1gbit;10gbit", "--worker-counts", "1,4,16",
                                               "--chart", chart.path, "--save-profile", profile.path])
        #expect(simulated.status == 0, "\(simulated.all)")
        // 3 reducers × 2 networks × 3 worker counts, and a verdict per compressed reducer and network.
        #expect(simulated.standardOutput.split(separator: "\n").filter { $0.hasPrefix("| powersgd(rank=2) |") }.count == 6)
        #expect(simulated.standardOutput.contains("powersgd(rank=2) on 1gbit: "))
        #expect(try String(contentsOf: chart, encoding: .utf8).hasPrefix("<svg"))
        // The saved profile reproduces the same table.
        let again = try CommandRunner.run(["simulate", "--profile", profile.path, "--networks", "1gbit;10gbit",
                                           "--worker-counts", "1,4,16"])
        #expect(again.status == 0, "\(again.all)")
        #expect(again.standardOutput == simulated.standardOutput)
    }

    /// Two MPI ranks and two in-process workers sum the same two values per element (float addition
    /// is commutative), so their loss curves are identical bit for bit; with more ranks OpenMPI may
    /// associate the sum differently and the curves agree to rounding (docs/training.md).
    @Test(arguments: [(2, 0.0), (4, 1e-4)])
    func mpiRanksTrainLikeInProcessWorkers(ranks: Int, relativeTolerance: Double) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let common = ["train", "--model", "mlp", "--dataset", "fashion-mnist", "--steps", "15", "--batch-size", "16",
                      "--reducer", "powersgd:rank=2"]
        let threadsLog = directory.appendingPathComponent("threads.jsonl"), mpiLog = directory.appendingPathComponent("mpi.jsonl")
        let threads = try CommandRunner.run(common + ["--workers", "\(ranks)", "--log-file", threadsLog.path])
        #expect(threads.status == 0, "\(threads.all)")
        let mpi = try CommandRunner.runUnderMPI(ranks: ranks, common + ["--backend", "mpi", "--log-file", mpiLog.path])
        #expect(mpi.status == 0, "\(mpi.all)")
        let a = try #require(RunLog.read(threadsLog).first), b = try #require(RunLog.read(mpiLog).first)
        #expect(a.steps.count == 15 && b.steps.count == 15)
        #expect(b.settings.workers == ranks)
        for (x, y) in zip(a.steps, b.steps) {
            #expect(abs(x.loss - y.loss) <= relativeTolerance * abs(x.loss), "step \(x.step): \(x.loss) vs \(y.loss)")
            #expect(x.payloadBytes == y.payloadBytes)
        }
    }

    /// `--overlap` under MPI (the communication thread calling MPI): PowerSGD, QSGD and Top-K
    /// give the sequential run's losses bit for bit on 2 ranks (two values per element sum the
    /// same in any order, whatever the buffer); on 3, MPI may associate a bucket's sum otherwise
    /// than the whole list's, so the losses agree to a relative 1e-4 (docs/overlap.md). The log
    /// carries the overlap's times.
    @Test(arguments: [(2, 0.0), (3, 1e-4)])
    func overlapUnderMPIGivesTheSequentialLosses(ranks: Int, relativeTolerance: Double) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let common = ["compare", "--model", "mlp", "--dataset", "fashion-mnist", "--steps", "6", "--batch-size", "16",
                      "--reducers", "powersgd:rank=2,qsgd:levels=16,topk:ratio=0.01", "--backend", "mpi"]
        let sequential = directory.appendingPathComponent("sequential"), overlapped = directory.appendingPathComponent("overlapped")
        let a = try CommandRunner.runUnderMPI(ranks: ranks, common + ["--output-dir", sequential.path], timeout: 180)
        #expect(a.status == 0, "\(a.all)")
        let b = try CommandRunner.runUnderMPI(ranks: ranks, common + ["--output-dir", overlapped.path, "--overlap", "--bucket-mb", "0.05"],
                                              timeout: 180)
        #expect(b.status == 0, "\(b.all)")
        let runsA = try RunLog.read(sequential.appendingPathComponent("runs.jsonl"))
        let runsB = try RunLog.read(overlapped.appendingPathComponent("runs.jsonl"))
        #expect(runsA.count == 3 && runsB.count == 3)
        for (x, y) in zip(runsA, runsB) {
            #expect(x.settings.reducer == y.settings.reducer)
            #expect(x.steps.count == 6 && y.steps.count == 6)
            for (p, q) in zip(x.steps, y.steps) {
                #expect(abs(p.loss - q.loss) <= relativeTolerance * abs(p.loss), "\(x.settings.reducer) step \(p.step): \(p.loss) vs \(q.loss)")
            }
            #expect(x.steps.allSatisfy { $0.exposedCommunicationSeconds == nil })
            #expect(y.steps.allSatisfy { $0.wallSeconds != nil && $0.communicationThreadSeconds != nil
                                         && $0.exposedCommunicationSeconds != nil }, "\(y.settings.reducer)")
        }
    }

    @Test func reducersListsEveryReducerWithTheOptionsItAccepts() throws {
        let outcome = try CommandRunner.run(["reducers"])
        #expect(outcome.status == 0, "\(outcome.all)")
        let lines = outcome.standardOutput.split(separator: "\n").map(String.init)
        for entry in ReducerCatalog.entries {
            let index = try #require(lines.firstIndex(of: entry.name), "\(entry.name) missing")
            #expect(lines[index + 2] == "    options: " + (entry.options.isEmpty ? "none" : entry.options.map(\.listing).joined(separator: ", ")))
        }
        #expect(ReducerCatalog.acceptedOptions(of: "powersgd")?.contains("warm-start") == true)
        #expect(ReducerCatalog.acceptedOptions(of: "qsgd")?.contains("levels") == true)
        #expect(ReducerCatalog.acceptedOptions(of: "nonsense") == nil)
        // Every reducer has a summary of its own, not a pointer to the docs.
        let summaries = ReducerCatalog.entries.map { entry in lines[lines.firstIndex(of: entry.name)! + 1] }
        #expect(Set(summaries).count == ReducerCatalog.entries.count, "\(summaries)")
        for summary in summaries { #expect(!summary.contains("see docs") && summary.count > 30, "\(summary)") }
    }

    struct BadInput: CustomTestStringConvertible, Sendable {
        var arguments: [String]
        var status: Int32
        var message: String
        var testDescription: String { arguments.joined(separator: " ") }
    }

    static let badInputs: [BadInput] = [
        BadInput(arguments: ["train", "--reducer", "powersvd"], status: 2, message: "--reducer"),
        BadInput(arguments: ["train", "--reducer", "powersgd:rank=0"], status: 2, message: "rank"),
        BadInput(arguments: ["train", "--reducer", "powersgd", "--rank", "0"], status: 2, message: "rank"),
        BadInput(arguments: ["train", "--model", "vgg16"], status: 2, message: "--model"),
        BadInput(arguments: ["train", "--learning-rate", "-0.1"], status: 2, message: "--learning-rate"),
        BadInput(arguments: ["train", "--workers", "0"], status: 2, message: "--workers"),
        BadInput(arguments: ["train", "--config", "/nonexistent/run.yaml"], status: 2, message: "/nonexistent/run.yaml"),
        BadInput(arguments: ["train", "--data-dir", "/nonexistent/fashion"], status: 1, message: "/nonexistent/fashion"),
        BadInput(arguments: ["compare", "--reducers", "sgd,sgd"], status: 2, message: "twice"),
        BadInput(arguments: ["compare", "--reducers", "sgd,qsgd:levels=0"], status: 2, message: "levels"),
        BadInput(arguments: ["simulate", "--worker-counts", "0,4"], status: 2, message: "--worker-counts"),
        BadInput(arguments: ["simulate", "--networks", "fast"], status: 2, message: "fast"),
        BadInput(arguments: ["simulate", "--from-log", "/nonexistent/runs.jsonl"], status: 1, message: "/nonexistent/runs.jsonl"),
        // A negative number after a flag is its value, which the range check then names.
        BadInput(arguments: ["train", "--learning-rate", "-1"], status: 2, message: "--learning-rate must be a positive number (got -1.0)"),
        BadInput(arguments: ["train", "--momentum", "-0.5"], status: 2, message: "--momentum must be in [0, 1) (got -0.5)"),
        BadInput(arguments: ["compare", "--target", "-3"], status: 2, message: "--target is an accuracy"),
        BadInput(arguments: ["train", "--network", "abc,def"], status: 2, message: "--network: network 'abc,def'"),
        BadInput(arguments: ["compare", "--target", "2"], status: 2, message: "--target is an accuracy for resnet8, a fraction in (0, 1] (got 2.0)"),
        BadInput(arguments: ["compare", "--model", "lstm", "--dataset", "shakespeare", "--target", "0.5"], status: 2,
                 message: "--target is a perplexity"),
        BadInput(arguments: ["train", "--config", "/"], status: 2, message: "--config /: is a directory"),
        BadInput(arguments: ["train", "--sync-every", "0"], status: 2, message: "--sync-every must be at least 1 (got 0)"),
        BadInput(arguments: ["train", "--sync-every", "4", "--outer-optimizer", "adam"], status: 2, message: "--outer-optimizer: unknown outer optimizer 'adam'"),
        BadInput(arguments: ["train", "--sync-every", "4", "--outer-optimizer", "nesterov:lr=0"], status: 2, message: "outer optimizer lr must be positive"),
        BadInput(arguments: ["train", "--sync-every", "4", "--outer-optimizer", "sgd:momentum=1"], status: 2, message: "momentum must be in [0, 1)"),
        BadInput(arguments: ["train", "--model", "mlp", "--sync-every", "4", "--dp", "noise=1,clip=1,delta=1e-5"], status: 2,
                 message: "--sync-every 4 with --dp"),
        // Refused from the arithmetic, before any replica is built.
        BadInput(arguments: ["train", "--width", "1e9"], status: 2, message: "--width 1e+09: resnet8 has"),
        BadInput(arguments: ["train", "--model", "mlp", "--width", "1e9"], status: 2, message: "more than this machine's"),
        BadInput(arguments: ["train", "--model", "resnet18", "--dataset", "cifar10", "--width", "1e300"], status: 2,
                 message: "--width 1e+300 is too large"),
        BadInput(arguments: ["train", "--model", "mlp", "--width", "2.5"], status: 2, message: "--width of mlp is a whole number"),
        BadInput(arguments: ["train", "--workers", "10000"], status: 2,
                 message: "--workers 10000 × --batch-size 32 examples per step are more than the 60000 training examples"),
        BadInput(arguments: ["train", "--batch-size", "100000000"], status: 2, message: "--batch-size 100000000 examples per step"),
        BadInput(arguments: ["train", "--batch-size", "9223372036854775807", "--workers", "2"], status: 2,
                 message: "an epoch would have no step"),
        BadInput(arguments: ["train", "--overlap", "--bucket-mb", "0"], status: 2, message: "--bucket-mb must be a positive number of MiB (got 0.0)"),
        BadInput(arguments: ["compare", "--bucket-mb", "-0.5"], status: 2, message: "--bucket-mb must be a positive number of MiB (got -0.5)"),
        BadInput(arguments: ["train", "--model", "mlp", "--overlap", "--dp", "noise=1.1,clip=1.0,delta=1e-5"], status: 2,
                 message: "--overlap cannot run with --dp: DP-SGD clips each example's gradient"),
        BadInput(arguments: ["train", "--overlap", "--reducer", "topk:scope=global"], status: 2,
                 message: "cannot be reduced bucket by bucket: scope=global"),
        BadInput(arguments: ["compare", "--overlap", "--reducers", "sgd,lgreco"], status: 2, message: "--overlap: lgreco"),
    ]

    @Test(arguments: badInputs)
    func badInputExitsWithAMessageNamingWhatWasWrong(_ input: BadInput) throws {
        let outcome = try CommandRunner.run(input.arguments, timeout: 120)
        #expect(outcome.status == input.status, "\(outcome.all)")
        #expect(outcome.standardError.contains(input.message), "\(outcome.standardError)")
        #expect(!outcome.standardError.contains("Fatal error"), "\(outcome.standardError)")
    }

    /// A seed above Int.max reaches every reducer's shared randomness instead of trapping.
    @Test func aSeedAboveIntMaxTrainsAndSimulates() throws {
        let train = try CommandRunner.run(["train"] + Self.quick + ["--steps", "2", "--seed", "9223372036854775808"], timeout: 120)
        #expect(train.status == 0, "\(train.all)")
        let simulate = try CommandRunner.run(["simulate", "--model", "mlp", "--dataset", "fashion-mnist", "--reducers", "sgd,powersgd",
                                              "--profile-steps", "1", "--worker-counts", "1,2", "--seed", "18446744073709551615"],
                                             timeout: 120)
        #expect(simulate.status == 0, "\(simulate.all)")
        #expect(!(train.all + simulate.all).contains("Fatal error"))
    }

    /// Every value a config file gives that is wrong names the file, the line and the key.
    @Test func configErrorsNameTheFileAndTheKey() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("run.yaml")
        let cases: [(text: String, message: [String])] = [
            ("workers: 2\nmomentum: -0.5\n", ["--momentum must be in [0, 1) (got -0.5)", "line 2: 'momentum: -0.5'"]),
            ("nesterov: maybe\n", ["nesterov", "line 1: 'nesterov: maybe'"]),
            ("workers: 2\nsteps: three\n", ["'three'", "line 2: 'steps: three'"]),
            ("workers: 2\nsteps: 3\nworkers: 4\n", ["'workers' is given twice (lines 1 and 3)"]),
        ]
        for (text, message) in cases {
            try text.write(to: config, atomically: true, encoding: .utf8)
            let outcome = try CommandRunner.run(["train", "--config", config.path, "--model", "mlp"])
            #expect(outcome.status == 2, "\(text): \(outcome.all)")
            for part in message + [config.path] {
                #expect(outcome.standardError.contains(part), "\(text): expected '\(part)' in \(outcome.standardError)")
            }
        }
        // A value on the command line overrides the file; the file's good values still apply.
        try "momentum: -0.5\nsteps: 2\n".write(to: config, atomically: true, encoding: .utf8)
        let overridden = try CommandRunner.run(["train", "--config", config.path, "--momentum", "0.5"] + Self.quick)
        #expect(overridden.status == 0, "\(overridden.all)")
        #expect(overridden.standardOutput.contains("2 steps)"), "\(overridden.standardOutput)")
    }

    @Test(arguments: ["train", "compare", "simulate"])
    func helpShowsTheConfigOption(_ subcommand: String) throws {
        let outcome = try CommandRunner.run([subcommand, "--help"])
        #expect(outcome.status == 0, "\(outcome.all)")
        #expect(outcome.standardOutput.contains("--config <file>"), "\(outcome.standardOutput)")
    }

    /// Under mpirun every rank of `--backend threads` would run the whole job: refused, naming --backend mpi.
    @Test func threadsBackendUnderMPIRunIsRefused() throws {
        let outcome = try CommandRunner.runUnderMPI(ranks: 2, ["train"] + Self.quick + ["--steps", "2"], timeout: 120)
        #expect(outcome.status != 0, "\(outcome.all)")
        #expect(outcome.standardError.contains("--backend threads under mpirun (OMPI_COMM_WORLD_SIZE=2)"), "\(outcome.all)")
        #expect(outcome.standardError.contains("use --backend mpi"), "\(outcome.all)")
        #expect(!outcome.standardOutput.contains("Summary"), "\(outcome.all)")
    }

    @Test func oneWorkerIsSingular() throws {
        let outcome = try CommandRunner.run(["train", "--model", "mlp", "--workers", "1", "--steps", "2", "--batch-size", "8"])
        #expect(outcome.status == 0, "\(outcome.all)")
        #expect(outcome.standardOutput.contains("; 1 worker (threads)"), "\(outcome.standardOutput)")
        #expect(outcome.standardOutput.contains(", 1 worker, 2 steps)"), "\(outcome.standardOutput)")
        #expect(!outcome.standardOutput.contains("1 workers"), "\(outcome.standardOutput)")
    }

    // MARK: - Files that cannot be written

    /// A path below a regular file cannot be created, even by root: refused before training,
    /// naming the flag and the path.
    @Test(arguments: ["--log-file", "--checkpoint-dir"])
    func anUnwritablePathIsRefusedBeforeTraining(_ flag: String) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("file")
        try "x".write(to: file, atomically: true, encoding: .utf8)
        let path = file.appendingPathComponent("out").path
        let outcome = try CommandRunner.run(["train"] + Self.quick + ["--steps", "3", flag, path]
                                            + (flag == "--checkpoint-dir" ? ["--checkpoint-every", "1"] : []))
        #expect(outcome.status == 1, "\(outcome.all)")
        #expect(outcome.standardError.contains("\(flag) \(path): cannot"), "\(outcome.standardError)")
        #expect(outcome.standardError.contains("Not a directory"), "\(outcome.standardError)")
        #expect(!outcome.standardOutput.contains("step 1/3"), "training must not start: \(outcome.standardOutput)")
        #expect(!outcome.standardError.contains("NSCocoaErrorDomain"), "\(outcome.standardError)")
    }

    /// A read-only file system (a tmpfs mounted read-only in a mount namespace of the test's own).
    @Test(.enabled(if: CommandRunner.canMountTmpfs), arguments: ["--log-file", "--checkpoint-dir"])
    func aReadOnlyFileSystemIsRefusedBeforeTraining(_ flag: String) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent(flag == "--log-file" ? "run.jsonl" : "checkpoints").path
        let outcome = try CommandRunner.runWithTmpfs(at: directory.path, size: "64k", options: "ro",
            ["train"] + Self.quick + ["--steps", "3", flag, path] + (flag == "--checkpoint-dir" ? ["--checkpoint-every", "1"] : []))
        #expect(outcome.status == 1, "\(outcome.all)")
        #expect(outcome.standardError.contains("\(flag) \(path): cannot"), "\(outcome.standardError)")
        #expect(outcome.standardError.contains("Read-only file system"), "\(outcome.standardError)")
        #expect(!outcome.standardOutput.contains("step 1/3"), "training must not start: \(outcome.standardOutput)")
    }

    /// A disk that fills during training (a tiny tmpfs): the failure names the flag and the path.
    @Test(.enabled(if: CommandRunner.canMountTmpfs), arguments: ["--log-file", "--checkpoint-dir"])
    func aDiskThatFillsDuringTrainingIsNamed(_ flag: String) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent(flag == "--log-file" ? "run.jsonl" : "checkpoints").path
        // 16 kB hold about 18 log lines of ~870 bytes; one rank's MLP checkpoint (weights, momentum,
        // error feedback) is over 1 MB, so the first one, at step 10, does not fit in 1 MB.
        let outcome = try CommandRunner.runWithTmpfs(at: directory.path, size: flag == "--log-file" ? "16k" : "1m",
            ["train"] + Self.quick + ["--steps", "200", "--evaluate-every", "1000", flag, path]
            + (flag == "--checkpoint-dir" ? ["--checkpoint-every", "10"] : []))
        #expect(outcome.status == 1, "\(outcome.all)")
        #expect(outcome.standardOutput.contains("step 9/200"), "the disk fills after training started: \(outcome.standardOutput)")
        #expect(outcome.standardError.contains("\(flag) \(path): cannot write"), "\(outcome.standardError)")
        #expect(outcome.standardError.contains("No space left on device"), "\(outcome.standardError)")
        #expect(!outcome.standardError.contains("NSCocoaErrorDomain"), "\(outcome.standardError)")
    }

    @Test func aConfigThatIsNotAMappingIsAUsageError() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("run.yaml")
        try "- just\n- a list\n".write(to: config, atomically: true, encoding: .utf8)
        let outcome = try CommandRunner.run(["train", "--config", config.path])
        #expect(outcome.status == 2, "\(outcome.all)")
        #expect(outcome.standardError.contains("mapping"), "\(outcome.standardError)")
        try "workerz: 4\n".write(to: config, atomically: true, encoding: .utf8)
        let typo = try CommandRunner.run(["train", "--config", config.path])
        #expect(typo.status == 2, "\(typo.all)")
        #expect(typo.standardError.contains("workerz"), "\(typo.standardError)")
    }
}
