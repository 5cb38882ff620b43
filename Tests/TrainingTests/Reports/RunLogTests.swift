import Collectives
import Foundation
import GradientCompression
import Testing
@testable import Training

@Suite struct RunLogTests {
    static func temporaryFile(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("reports-\(UUID().uuidString)-\(name)")
    }

    @Test func recordsRoundTripThroughJSONLines() throws {
        let url = Self.temporaryFile("run.jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        let written = try SyntheticRuns.run(reducer: "powersgd(rank=2)", payload: 1_000_000,
                                            evaluations: [(10, 0.5), (20, 0.75), (40, 0.8)],
                                            log: try RunLogWriter(url: url))
        let text = try String(contentsOf: url, encoding: .utf8)
        let lines = text.split(separator: "\n")
        #expect(lines.count == 1 + 40 + 3)
        #expect(lines[0].contains("\"record\":\"run\""))
        #expect(lines[1].contains("\"record\":\"step\""))
        #expect(lines.filter { $0.contains("\"record\":\"evaluation\"") }.count == 3)
        let read = try RunLog.read(url)
        #expect(read == [written])
        // Re-encoding what was read gives the same bytes, line by line.
        #expect(try RunLog.lines(of: read[0]).map(RunLog.encode) == lines.map(String.init))
    }

    @Test func cumulativeTotalsAndElapsedTimesAddUp() throws {
        let run = try SyntheticRuns.run(reducer: "sgd", payload: 1_000_000, evaluations: [(10, 0.5)])
        #expect(run.steps[9].cumulativePayloadBytes == 10_000_000)
        #expect(run.steps[9].cumulativeBytesSent == 10 * 1_500_000)  // 2·3/4 · 1 MB per step at W = 4
        let evaluation = try #require(run.evaluations.first)
        #expect(evaluation.cumulativePayloadBytes == 10_000_000)
        #expect(abs(evaluation.elapsedSeconds - 10 * 0.135) < 1e-12)
        #expect(abs(evaluation.projectedElapsedSeconds - 10 * (0.125 + 0.00126)) < 1e-12)
        #expect(run.steps[0].compressionRatio == 4)
    }

    @Test func severalRunsAndAResumeReadBackAsUninterruptedRuns() throws {
        let url = Self.temporaryFile("two-runs.jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        let first = try SyntheticRuns.run(reducer: "sgd", payload: 4_000_000, steps: 6, evaluations: [(3, 0.4), (6, 0.5)],
                                          log: try RunLogWriter(url: url))
        // The second run is killed after step 5 and resumed from its checkpoint at step 3.
        let killed = try SyntheticRuns.run(reducer: "signum", payload: 125_000, steps: 6, evaluations: [(3, 0.3), (6, 0.35)],
                                           log: try RunLogWriter(url: url, append: true))
        let appended = try RunLogWriter(url: url, append: true)
        let resumed = RunRecorder(resuming: killed, atStep: 3, log: appended)
        #expect(resumed.run.steps.count == 3 && resumed.run.evaluations.count == 1)
        for step in 3..<6 {
            try resumed.recordStep(step: step, epoch: 0, loss: 9, computeSeconds: 0.1, compressionSeconds: 0.02,
                                   communicationSeconds: 0.01, optimizerSeconds: 0.005,
                                   reduction: ReductionStats(payloadBytes: 125_000, uncompressedBytes: 4_000_000))
        }
        try resumed.recordEvaluation(step: 6, epoch: 0, metric: .accuracy, value: 0.36)
        let runs = try RunLog.read(url)
        #expect(runs.count == 2)
        #expect(runs[0] == first)
        #expect(runs[1] == resumed.run)
        #expect(runs[1].steps.map(\.step) == Array(0..<6))
        #expect(runs[1].steps.map(\.loss).suffix(3) == [9, 9, 9])
        #expect(runs[1].evaluations.map(\.value) == [0.3, 0.36])
        #expect(runs[1].steps[5].cumulativePayloadBytes == 6 * 125_000)
    }

    @Test func malformedLinesAreReportedWithFileAndLine() throws {
        let good = try RunLog.encode(.run(RunSettings(reducer: "sgd", model: "m", dataset: "d", workers: 2,
                                                      projection: SyntheticRuns.projection)))
        #expect(throws: ReportError.self) { try RunLog.parse("\(good)\n{\"record\":\"step\",\"step\":1}\n", path: "x.jsonl") }
        do {
            _ = try RunLog.parse("\(good)\n\nnot json\n", path: "x.jsonl")
            Issue.record("expected an error")
        } catch let error as ReportError {
            #expect(error.description.hasPrefix("x.jsonl:3: "))
        }
        do {
            _ = try RunLog.parse("{\"record\":\"evaluation\",\"step\":1}\n", path: "y.jsonl")
            Issue.record("expected an error")
        } catch let error as ReportError {
            #expect(error.description.contains("y.jsonl:1"))
        }
        #expect(throws: ReportError.self) { try RunLog.read(URL(fileURLWithPath: "/nonexistent/run.jsonl")) }
    }

    /// A log cut off inside its last line (disk full, kill): the complete lines are read, and
    /// appending after it (a resume) starts on a fresh line instead of gluing onto the fragment.
    @Test func aTornFinalLineIsDroppedAndAResumeAppendsAfterIt() throws {
        let url = Self.temporaryFile("torn.jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        let run = try SyntheticRuns.run(reducer: "sgd", payload: 1000, steps: 4, evaluations: [], log: try RunLogWriter(url: url))
        let complete = try String(contentsOf: url, encoding: .utf8)
        try (complete + "{\"record\":\"step\",\"st").write(to: url, atomically: true, encoding: .utf8)
        var warnings: [String] = []
        #expect(try RunLog.read(url, warn: { warnings.append($0) }) == [run])
        #expect(warnings.count == 1)
        #expect(warnings.first?.contains("\(url.path):6:") == true, "\(warnings)")

        let resumed = RunRecorder(resuming: run, atStep: 4, log: try RunLogWriter(url: url, append: true))
        try resumed.recordStep(step: 4, epoch: 0, loss: 1, computeSeconds: 0.1, compressionSeconds: 0, communicationSeconds: 0,
                               optimizerSeconds: 0, reduction: ReductionStats(payloadBytes: 1000, uncompressedBytes: 1000))
        warnings = []
        let again = try RunLog.read(url, warn: { warnings.append($0) })
        #expect(again == [resumed.run])
        #expect(warnings.isEmpty)
        #expect(again.first?.steps.map(\.step) == Array(0..<5))
    }

    /// Only the last line may be torn: a broken line with complete lines after it is an error.
    @Test func aBrokenLineInTheMiddleIsStillAnError() throws {
        let good = try RunLog.encode(.run(RunSettings(reducer: "sgd", model: "m", dataset: "d", workers: 2,
                                                      projection: SyntheticRuns.projection)))
        do {
            _ = try RunLog.parse("\(good)\n{\"record\":\"st\n\(good)\n", path: "x.jsonl")
            Issue.record("a broken line in the middle was accepted")
        } catch let error as ReportError {
            #expect(error.description.hasPrefix("x.jsonl:2: "), "\(error)")
        }
    }
}
