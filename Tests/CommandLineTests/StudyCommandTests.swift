import Foundation
import Testing

/// `powersgd study`: a study's short mode writes its report and CSV; bad flags exit 2 naming them.
@Suite struct StudyCommandTests {
    @Test func qsgdBoundsShortModeWritesTheReportAndTheNumbers() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let outcome = try CommandRunner.run(["study", "qsgd-bounds", "--short", "--output-dir", directory.path], timeout: 120)
        #expect(outcome.status == 0, "\(outcome.all)")
        let csv = try String(contentsOf: directory.appendingPathComponent("results.csv"), encoding: .utf8)
        let lines = csv.split(separator: "\n")
        // 5 distributions × 2 sizes × 4 level counts × 2 scales, plus the header.
        #expect(lines.count == 81)
        #expect(lines.first?.hasPrefix("distribution,n,s,scaling") == true)
        let html = try String(contentsOf: directory.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(html.contains("<svg") && html.contains("Lemma 3.1"))
        #expect(outcome.standardOutput.contains("standard errors"))
    }

    @Test func nonsenseFlagsExitTwoNamingThem() throws {
        let few = try CommandRunner.run(["study", "qsgd-bounds", "--trials", "1"])
        #expect(few.status == 2 && few.standardError.contains("--trials"), "\(few.all)")
        let unknown = try CommandRunner.run(["study", "no-such-study"])
        #expect(unknown.status == 2, "\(unknown.all)")
    }
}
