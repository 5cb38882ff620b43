import Foundation
import Testing
import Training

/// `compare --dp-budgets --seeds`: a sweep's run equals the run that `compare` makes at that seed
/// and budget alone, and the accuracy-against-ε files and report section are written.
@Suite(.serialized) struct PrivacyBudgetSweepTests {
    static let common = ["compare", "--model", "mlp", "--dataset", "fashion-mnist", "--workers", "2", "--batch-size", "16",
                         "--steps", "4", "--reducers", "sgd,powersgd:rank=1"]

    @Test func sweepRunsEqualSingleRunsAndTheTableAndChartAreWritten() throws {
        let sweep = try temporaryDirectory(), single = try temporaryDirectory()
        defer { for d in [sweep, single] { try? FileManager.default.removeItem(at: d) } }
        let outcome = try CommandRunner.run(Self.common + [
            "--dp", "noise=1,clip=1.0,delta=1e-5,placement=distributed", "--dp-budgets", "8,none", "--seeds", "3,4",
            "--output-dir", sweep.path])
        #expect(outcome.status == 0, "\(outcome.all)")
        let csv = try String(contentsOf: sweep.appendingPathComponent("accuracy-vs-epsilon.csv"), encoding: .utf8)
        let rows = csv.split(separator: "\n").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        #expect(rows.count == 2 * 2 * 2, "\(csv)")
        // ε spent never exceeds the target; the runs without DP spend none.
        for row in rows where row[1] == "8" { #expect((Double(row[5]) ?? .infinity) <= 8, "\(row)") }
        for row in rows where row[1].isEmpty { #expect(row[5].isEmpty) }

        let alone = try CommandRunner.run(Self.common + ["--dp", "epsilon=8,clip=1.0,delta=1e-5,placement=distributed", "--seed", "4",
                                                         "--output-dir", single.path])
        #expect(alone.status == 0, "\(alone.all)")
        let singleRuns = try RunLog.read(single.appendingPathComponent("runs.jsonl"))
        let sweepRuns = try RunLog.read(sweep.appendingPathComponent("runs.jsonl"))
        #expect(sweepRuns.map(\.settings.reducer) == ["sgd · ε=8 · seed 3", "powersgd(rank=1) · ε=8 · seed 3", "sgd · no DP · seed 3",
                                                      "powersgd(rank=1) · no DP · seed 3", "sgd · ε=8 · seed 4",
                                                      "powersgd(rank=1) · ε=8 · seed 4", "sgd · no DP · seed 4",
                                                      "powersgd(rank=1) · no DP · seed 4"])
        // The same seed and budget give the same losses, bit for bit; another seed does not.
        for (index, offset) in [(0, 4), (1, 5)] {
            #expect(sweepRuns[offset].steps.map(\.loss) == singleRuns[index].steps.map(\.loss))
            #expect(sweepRuns[offset].steps.map(\.epsilon) == singleRuns[index].steps.map(\.epsilon))
            #expect(sweepRuns[index].steps.map(\.loss) != singleRuns[index].steps.map(\.loss))
        }
        // Without DP the losses differ from the DP run at the same seed.
        #expect(sweepRuns[6].steps.map(\.loss) != sweepRuns[4].steps.map(\.loss))

        let markdown = try String(contentsOf: sweep.appendingPathComponent("accuracy-vs-epsilon.md"), encoding: .utf8)
        #expect(markdown.hasPrefix("| reducer | ε = 8 | no DP |"), "\(markdown)")
        let html = try String(contentsOf: sweep.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(html.contains("Final accuracy against the privacy budget"))
        #expect(html.contains("Test accuracy vs privacy budget"))
        #expect(try String(contentsOf: sweep.appendingPathComponent("accuracy-vs-epsilon.svg"), encoding: .utf8).hasPrefix("<svg"))
    }

    static let badInputs: [(arguments: [String], message: String)] = [
        (["--dp-budgets", "1,8"], "--dp-budgets needs --dp"),
        (["--dp", "epsilon=1,clip=1,delta=1e-5", "--dp-budgets", "1,zero"], "'zero' is neither a positive ε nor 'none'"),
        (["--dp", "epsilon=1,clip=1,delta=1e-5", "--dp-budgets", "-1"], "'-1' is neither"),
        (["--dp", "epsilon=1,clip=1,delta=1e-5", "--dp-budgets", "1,none,1"], "names ε = 1.0 twice"),
        (["--seeds", "1,x"], "--seeds 1,x: expected comma-separated whole numbers"),
        (["--seeds", "2,2"], "names a seed twice"),
    ]

    @Test(arguments: badInputs.indices) func badSweepFlagsAreUsageErrors(_ index: Int) throws {
        let (arguments, message) = Self.badInputs[index]
        let outcome = try CommandRunner.run(Self.common + arguments)
        #expect(outcome.status == 2, "\(outcome.all)")
        #expect(outcome.standardError.contains(message), "\(outcome.all)")
    }
}
