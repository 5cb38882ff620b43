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
        for reducer in ["| sgd |", "| powersgd(rank=2) |", "| ef(topk(0.01,exact)) |"] {
            #expect(markdown.contains(reducer), "\(markdown)")
        }
        #expect(markdown.contains("time to"), "the default target adds the time-to-target columns: \(markdown)")

        let csv = try String(contentsOf: directory.appendingPathComponent("comparison.csv"), encoding: .utf8)
        let csvLines = csv.split(separator: "\n")
        #expect(csvLines.count == 4)
        #expect(csvLines[0] == Substring(ComparisonTable.csvHeader.joined(separator: ",")))

        // The runs' logs: 12 steps and 3 evaluations each; PowerSGD sends less than SGD.
        let runs = try RunLog.read(directory.appendingPathComponent("runs.jsonl"))
        #expect(runs.map(\.settings.reducer) == ["sgd", "powersgd(rank=2)", "ef(topk(0.01,exact))"])
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

    @Test func reducersListsEveryReducerWithTheOptionsItAccepts() throws {
        let outcome = try CommandRunner.run(["reducers"])
        #expect(outcome.status == 0, "\(outcome.all)")
        let lines = outcome.standardOutput.split(separator: "\n").map(String.init)
        for entry in ReducerCatalog.entries {
            let index = try #require(lines.firstIndex(of: entry.name), "\(entry.name) missing")
            let options = ReducerCatalog.acceptedOptions(of: entry.name) ?? []
            #expect(lines[index + 2] == "    options: " + (options.isEmpty ? "none" : options.joined(separator: ", ")))
        }
        #expect(ReducerCatalog.acceptedOptions(of: "powersgd")?.contains("warm-start") == true)
        #expect(ReducerCatalog.acceptedOptions(of: "qsgd")?.contains("levels") == true)
        #expect(ReducerCatalog.acceptedOptions(of: "nonsense") == nil)
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
    ]

    @Test(arguments: badInputs)
    func badInputExitsWithAMessageNamingWhatWasWrong(_ input: BadInput) throws {
        let outcome = try CommandRunner.run(input.arguments, timeout: 120)
        #expect(outcome.status == input.status, "\(outcome.all)")
        #expect(outcome.standardError.contains(input.message), "\(outcome.standardError)")
        #expect(!outcome.standardError.contains("Fatal error"), "\(outcome.standardError)")
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
