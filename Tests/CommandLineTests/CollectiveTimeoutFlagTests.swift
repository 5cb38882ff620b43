import Foundation
import Testing

/// `--collective-timeout` on train and compare: documented in `--help`, bad values are usage errors.
@Suite struct CollectiveTimeoutFlagTests {
    @Test(arguments: ["train", "compare"])
    func theFlagIsDocumentedAndABadValueNamesIt(command: String) throws {
        let help = try CommandRunner.run([command, "--help"], timeout: 60)
        #expect(help.all.contains("--collective-timeout"), "\(help.all)")
        for value in ["-1", "nan", "inf"] {
            let outcome = try CommandRunner.run([command, "--collective-timeout=\(value)", "--steps", "1"], timeout: 60)
            #expect(outcome.status == 2, "\(value): \(outcome.all)")
            #expect(outcome.standardError.contains("--collective-timeout must be 0 (no limit) or a positive number of seconds"),
                    "\(value): \(outcome.standardError)")
        }
    }
}
