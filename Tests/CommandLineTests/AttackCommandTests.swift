import Foundation
import Testing

/// `powersgd attack`: usage errors name their flag (exit 2), runtime failures exit 1, and a sweep
/// writes a JSON summary and an HTML report with originals above reconstructions.
@Suite(.serialized) struct AttackCommandTests {
    @Test(arguments: [
        (["--model", "resnet18"], "--model"), (["--model", "lenet"], "--attack"), (["--attack", "dlgg"], "--attack"),
        (["--model", "resnet8"], "--attack"),
        (["--reducers", "sgd,bogus"], "--reducers"), (["--reducer", "topk:ratio=2"], "--reducer"),
        (["--batch-size", "0"], "--batch-size"), (["--images", "8", "--first-image", "9999"], "--images"),
        (["--noise-multiplier", "-1"], "--noise-multiplier"), (["--dataset", "mnist"], "--dataset"),
        (["--model", "lenet-sigmoid"], "--attack"), (["--optimizer", "newton"], "--optimizer"),
        (["--optimizer", "lbfgs"], "--optimizer"), (["--workers", "0"], "--workers"), (["--observe", "ring"], "--observe"),
        (["--workers", "2", "--observe", "worker", "--reducer", "topk:ratio=0.1"], "--observe"),
        (["--start", "analytic"], "--start"), (["--start", "zeros"], "--start"),
    ])
    func badInputIsAUsageErrorNamingTheFlag(arguments: [String], flag: String) throws {
        let outcome = try CommandRunner.run(["attack", "--attack", "analytic"] + arguments, timeout: 120)
        #expect(outcome.status == 2 && outcome.all.contains(flag), "\(outcome.all)")
        // The command's own check, not the parser's complaint about an unknown subcommand or flag.
        #expect(!outcome.all.contains("Unknown option") && !outcome.all.contains("Unexpected argument"), "\(outcome.all)")
    }

    /// Four workers of one image each: worker 0's PowerSGD factors give its image away exactly,
    /// the aggregate of the four does not (rank 1 against a rank-4 sum).
    @Test func theWorkerObservationAttacksWorkerZerosImages() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("attack-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var means: [String: Double] = [:]
        for observe in ["worker", "aggregate"] {
            let json = directory.appendingPathComponent("\(observe).json")
            let outcome = try CommandRunner.run(["attack", "--attack", "analytic", "--workers", "4", "--observe", observe, "--images", "2",
                                                 "--reducer", "powersgd:rank=1", "--json", json.path], timeout: 120)
            #expect(outcome.status == 0, "\(outcome.all)")
            let object = try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any]
            let result = try #require((object?["results"] as? [[String: Any]])?.first)
            means[observe] = result["psnrMean"] as? Double
            // worker: 2 groups of 4 images, worker 0's image of each; aggregate: one group's 4 images.
            #expect(result["images"] as? Int == (observe == "worker" ? 2 : 4))
        }
        #expect(means["worker"] == 100)
        #expect((means["aggregate"] ?? 100) < 30)
    }

    @Test func aMissingDatasetIsARuntimeErrorNamingIt() throws {
        let outcome = try CommandRunner.run(["attack", "--dataset", "cifar10", "--data-dir", "/nonexistent-inversion"], timeout: 120)
        #expect(outcome.status == 1 && outcome.all.contains("--dataset"), "\(outcome.all)")
    }

    /// ResNet-8 (batch norm) runs the optimization attack through PowerSGD's message.
    @Test func resNet8IsAttacked() throws {
        let json = FileManager.default.temporaryDirectory.appendingPathComponent("attack-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: json) }
        let outcome = try CommandRunner.run(["attack", "--model", "resnet8", "--attack", "inverting", "--iterations", "3", "--images", "1",
                                             "--reducer", "powersgd:rank=1", "--json", json.path], timeout: 300)
        #expect(outcome.status == 0, "\(outcome.all)")
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any]
        #expect((object?["settings"] as? String)?.hasPrefix("model resnet8 at initialization") == true)
        let result = try #require((object?["results"] as? [[String: Any]])?.first)
        #expect(result["images"] as? Int == 1 && (result["psnrMean"] as? Double)?.isFinite == true)
    }

    @Test func aSweepWritesTheTableAndTheImageGrid() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("attack-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let json = directory.appendingPathComponent("attack.json")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let outcome = try CommandRunner.run(["attack", "--attack", "analytic", "--images", "2", "--reducers", "sgd,signsgd",
                                             "--json", json.path, "--report", directory.path], timeout: 120)
        #expect(outcome.status == 0, "\(outcome.all)")
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any]
        let results = try #require(object?["results"] as? [[String: Any]])
        #expect(results.map { $0["reducer"] as? String } == ["sgd", "signsgd"])
        // Through plain SGD the analytic attack is exact (capped at 100 dB); signs alone are not.
        #expect(results[0]["psnrMean"] as? Double == 100)
        #expect((results[1]["psnrMean"] as? Double ?? 100) < 40)
        let html = try String(contentsOf: directory.appendingPathComponent("report.html"), encoding: .utf8)
        let images = html.components(separatedBy: "src=\"data:image/png;base64,").dropFirst()
        #expect(images.count == 8, "2 reducers × 2 images × (original, reconstruction)")
        for image in images {
            let encoded = String(image.prefix { $0 != "\"" })
            let png = try #require(Data(base64Encoded: encoded))
            #expect(Array(png.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        }
    }
}
