import Foundation
import Testing
import Training

/// `powersgd train` with checkpoints as a user meets them: resuming with other flags, resuming
/// a finished run, pruning, a garbage `latest`, Ctrl-C.
@Suite(.serialized) struct CheckpointCommandTests {
    static let quick = ["train", "--model", "mlp", "--width", "32", "--dataset", "fashion-mnist", "--workers", "2",
                        "--batch-size", "16", "--reducer", "powersgd:rank=1"]

    @Test func resumingWithAnotherConfigurationIsRefusedAndAFinishedRunHasNothingToDo() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try CommandRunner.run(Self.quick + ["--steps", "4", "--checkpoint-every", "2",
                                                        "--checkpoint-dir", directory.path])
        #expect(first.status == 0, "\(first.all)")

        let changed = try CommandRunner.run(Self.quick + ["--steps", "6", "--seed", "2", "--batch-size", "8",
                                                          "--checkpoint-dir", directory.path, "--resume"])
        #expect(changed.status == 2, "\(changed.all)")
        #expect(changed.standardError.contains("--seed"), "\(changed.standardError)")
        #expect(changed.standardError.contains("--batch-size"), "\(changed.standardError)")
        #expect(!changed.standardError.contains("--model"), "unchanged keys are not listed: \(changed.standardError)")

        let finished = try CommandRunner.run(Self.quick + ["--steps", "4", "--checkpoint-dir", directory.path, "--resume"])
        #expect(finished.status == 0, "\(finished.all)")
        #expect(finished.standardOutput.contains("nothing to do"), "\(finished.all)")

        let longer = try CommandRunner.run(Self.quick + ["--steps", "6", "--checkpoint-dir", directory.path, "--resume"])
        #expect(longer.status == 0, "\(longer.all)")
        #expect(longer.standardOutput.contains("from step 4 to step 6"), "\(longer.all)")
        #expect(longer.standardOutput.contains("schedule"), "a cosine schedule over another length is named: \(longer.all)")
    }

    static func stepDirectories(_ directory: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix("step-") }.sorted()
    }

    /// Pruning keeps the newest `--keep-checkpoints` (default 3), and a start removes the
    /// temporary files interrupted writes left behind.
    @Test func oldCheckpointsArePrunedAndStrayTemporaryFilesRemoved() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let step5 = directory.appendingPathComponent("step-5")
        try FileManager.default.createDirectory(at: step5, withIntermediateDirectories: true)
        for stray in [directory.appendingPathComponent(".latest.partial"), directory.appendingPathComponent(".dat.nosyncA1b2"),
                      step5.appendingPathComponent(".rank-1.state.partial")] {
            try Data([1, 2, 3]).write(to: stray)
        }
        let kept = try CommandRunner.run(Self.quick + ["--steps", "5", "--checkpoint-every", "1",
                                                       "--checkpoint-dir", directory.path, "--keep-checkpoints", "2"])
        #expect(kept.status == 0, "\(kept.all)")
        #expect(try Self.stepDirectories(directory) == ["step-4", "step-5"])
        #expect(try Checkpoint.latestStep(in: directory) == 5)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() == ["latest", "step-4", "step-5"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: step5.path).sorted() == ["rank-0.state", "rank-1.state"])

        let other = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: other) }
        let byDefault = try CommandRunner.run(Self.quick + ["--steps", "5", "--checkpoint-every", "1",
                                                            "--checkpoint-dir", other.path])
        #expect(byDefault.status == 0, "\(byDefault.all)")
        #expect(try Self.stepDirectories(other) == ["step-3", "step-4", "step-5"])
    }

    @Test func aGarbageLatestFileIsNamedAsSuch() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let latest = directory.appendingPathComponent("latest")
        try "12abc\n".write(to: latest, atomically: true, encoding: .utf8)
        let outcome = try CommandRunner.run(Self.quick + ["--steps", "4", "--checkpoint-dir", directory.path, "--resume"])
        #expect(outcome.status == 1, "\(outcome.all)")
        #expect(outcome.standardError.contains(latest.path), "\(outcome.standardError)")
        #expect(outcome.standardError.contains("12abc"), "\(outcome.standardError)")
        #expect(!outcome.standardError.contains("no checkpoint"), "\(outcome.standardError)")
    }

    /// Ctrl-C during training says at which step it stopped and how to go on.
    @Test func anInterruptNamesTheStepAndHowToResume() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let outcome = try CommandRunner.run(Self.quick + ["--steps", "20000", "--checkpoint-every", "50",
                                                          "--checkpoint-dir", directory.path], timeout: 120,
                                            interruptWhen: { $0.contains("/20000  loss") })
        #expect(!outcome.timedOut)
        #expect(outcome.status == 130, "\(outcome.all)")
        #expect(outcome.standardError.contains("interrupted at step"), "\(outcome.all)")
        #expect(outcome.standardError.contains("--resume"), "\(outcome.all)")
    }

    /// compare says which run it stopped in and that its files are written only at the end.
    @Test func anInterruptedCompareSaysWhereItStoppedAndWhatIsLeft() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let outcome = try CommandRunner.run(["compare", "--model", "mlp", "--dataset", "fashion-mnist", "--workers", "2",
                                             "--batch-size", "16", "--width", "16", "--steps", "20000",
                                             "--reducers", "sgd,powersgd:rank=1", "--output-dir", directory.path],
                                            timeout: 120, interruptWhen: { $0.contains("/20000  loss") })
        #expect(!outcome.timedOut)
        #expect(outcome.status == 130, "\(outcome.all)")
        #expect(outcome.standardError.contains("interrupted at step"), "\(outcome.all)")
        #expect(outcome.standardError.contains("of sgd (run 1 of 2)"), "\(outcome.all)")
        #expect(outcome.standardError.contains("cannot be resumed"), "\(outcome.all)")
    }
}
