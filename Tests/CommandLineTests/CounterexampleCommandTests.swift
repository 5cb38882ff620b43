import Foundation
import Testing

/// `powersgd study powersgd-counterexample`: the short mode writes the report and one CSV row per
/// method, start and step; bad flags exit 2 naming them.
@Suite struct CounterexampleCommandTests {
    @Test func shortModeWritesTheDistancesPerStep() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let outcome = try CommandRunner.run(["study", "powersgd-counterexample", "--short", "--steps", "50",
                                             "--output-dir", directory.path], timeout: 120)
        #expect(outcome.status == 0, "\(outcome.all)")
        let csv = try String(contentsOf: directory.appendingPathComponent("results.csv"), encoding: .utf8)
        let lines = csv.split(separator: "\n")
        // 3 methods from the counterexample start, PowerSGD and the SVD from 5 other starts; 50 steps each.
        #expect(lines.count == 1 + 13 * 50)
        #expect(lines.first == "method,start,step,distance,gradient_norm")
        let html = try String(contentsOf: directory.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(html.contains("<svg") && html.contains("powersgd+"))
    }

    @Test func nonsenseFlagsExitTwoNamingThem() throws {
        for (arguments, flag) in [(["--steps", "0"], "--steps"), (["--period", "0"], "--period")] {
            let bad = try CommandRunner.run(["study", "powersgd-counterexample"] + arguments)
            #expect(bad.status == 2 && bad.standardError.contains(flag), "\(bad.all)")
        }
    }
}
