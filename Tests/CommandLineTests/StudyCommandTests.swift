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
        for (arguments, flag) in [(["power-iterations", "--iterations", "0"], "--iterations"), (["power-iterations", "--ranks", "2,x"], "--ranks"),
                                  (["subspace-angles", "--model", "lstm"], "--model"), (["subspace-angles", "--epochs", "-1"], "--epochs"),
                                  (["subspace-angles", "--probe-every", "0"], "--probe-every")] {
            let bad = try CommandRunner.run(["study"] + arguments)
            #expect(bad.status == 2 && bad.standardError.contains(flag), "\(bad.all)")
        }
    }

    /// A few steps of the MLP at two ranks (seconds): one CSV row per measured layer and step, with
    /// angles in [0°, 90°] and PowerSGD's error never below the exact SVD's.
    @Test func subspaceAnglesShortModeWritesTheMeasurements() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let outcome = try CommandRunner.run(["study", "subspace-angles", "--short", "--epochs", "0.02", "--ranks", "1,2",
                                             "--output-dir", directory.path], timeout: 300)
        #expect(outcome.status == 0, "\(outcome.all)")
        let csv = try String(contentsOf: directory.appendingPathComponent("results.csv"), encoding: .utf8)
        let rows = csv.split(separator: "\n").dropFirst().map { $0.split(separator: ",").map(String.init) }
        // 10 steps, measured every 2nd, 2 compressed layers, 2 ranks.
        #expect(rows.count == 5 * 2 * 2, "\(csv)")
        for row in rows {
            let angle = Double(row[10])!, power = Double(row[11])!, optimal = Double(row[12])!
            #expect(angle >= 0 && angle <= 90 && power >= optimal - 1e-6, "\(row)")
        }
        let html = try String(contentsOf: directory.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(html.contains("<svg") && html.contains("principal angle"))
    }
}
