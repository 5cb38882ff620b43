import Foundation
import Testing

/// Benchmarks report the machine they ran on, and a peer figure only when the peer was measured
/// (run now with --peer, or read from its saved output): never a figure typed into the code.
@Suite(.serialized) struct BenchmarkPeerTests {
    static func json(_ outcome: CommandRunner.Outcome) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(outcome.standardOutput.utf8))
        return try #require(object as? [String: Any], "\(outcome.all)")
    }

    static let quick = ["bench", "compressors", "--elements", "4096", "--repeats", "1", "--only", "fp16,topk"]

    @Test func withoutAPeerThereIsNoPeerFigureAndTheMachineIsNamed() throws {
        let outcome = try CommandRunner.run(Self.quick, timeout: 120)
        #expect(outcome.status == 0, "\(outcome.all)")
        let report = try Self.json(outcome)
        let machine = try #require(report["machine"] as? [String: Any])
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let cpu = try #require(machine["cpu"] as? String)
        #expect(cpuinfo.contains(cpu) && !cpu.isEmpty, "cpu '\(cpu)' is not /proc/cpuinfo's model name")
        let methods = try #require(report["methods"] as? [[String: Any]])
        #expect(methods.count == 4, "fp16 and three Top-K rows: \(methods.map { $0["method"] ?? "?" })")
        for row in methods {
            #expect(row["peerEncodeMs"] == nil && row["encodeRatioToPeer"] == nil, "\(row)")
        }
    }

    /// The peer's saved output is read by line name, and the ratio is ours over theirs.
    @Test func aSavedPeerOutputGivesTheRatio() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("peer-\(UUID().uuidString).txt")
        defer { try? FileManager.default.removeItem(at: file) }
        try "qsgd_s64_encode: 300.0 ms  0.15 GB/s of fp32 input\ntopk_1pct: 250.0 ms  0.2 GB/s of fp32 input\n"
            .appending("fp16_cast: 2.5 ms  17.8 GB/s of fp32 input\nqsgd_decode: 70.0 ms\n").write(to: file, atomically: true, encoding: .utf8)
        let outcome = try CommandRunner.run(Self.quick + ["--peer-output", file.path], timeout: 120)
        #expect(outcome.status == 0, "\(outcome.all)")
        let methods = try #require(try Self.json(outcome)["methods"] as? [[String: Any]])
        let fp16 = try #require(methods.first { ($0["method"] as? String)?.hasPrefix("fp16") == true })
        #expect(fp16["peerEncodeMs"] as? Double == 2.5)
        let ours = try #require(fp16["encodeMs"] as? Double), ratio = try #require(fp16["encodeRatioToPeer"] as? Double)
        #expect(abs(ratio - ours / 2.5) < 1e-9 * max(1, ratio))
        let topk = methods.filter { ($0["method"] as? String)?.hasPrefix("topk(ratio=0.01,") == true }
        #expect(topk.count == 2 && topk.allSatisfy { $0["peerEncodeMs"] as? Double == 250 }, "\(topk)")
    }

    @Test func aPeerThatCannotRunIsAnErrorNamingIt() throws {
        var outcome = try CommandRunner.run(Self.quick + ["--peer", "--python", "/nonexistent/python"], timeout: 60)
        #expect(outcome.status == 1 && outcome.all.contains("/nonexistent/python"), "\(outcome.all)")
        outcome = try CommandRunner.run(["bench", "model", "--peer-output", "/nonexistent/peer.txt"], timeout: 60)
        #expect(outcome.status == 2 && outcome.all.contains("--peer-output"), "\(outcome.all)")
    }
}
