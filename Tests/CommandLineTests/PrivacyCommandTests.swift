import Foundation
import Testing

/// `powersgd privacy` and `train --dp` as a user runs them.
@Suite struct PrivacyCommandTests {
    /// ε and σ against Opacus 1.6.0 (values and commands in Tests/PrivacyTests/AccountantTests.swift).
    @Test func privacyPrintsEpsilonAndNoise() throws {
        let forward = try CommandRunner.run(["privacy", "--sample-rate", "0.01", "--noise", "1.0", "--steps", "1000",
                                             "--delta", "1e-5", "--json"])
        #expect(forward.status == 0, "\(forward.all)")
        let report = try JSONSerialization.jsonObject(with: Data(forward.standardOutput.utf8)) as? [String: Any]
        let epsilon = try #require(report?["epsilon"] as? Double)
        #expect(abs(epsilon - 2.1013652716430564) < 1e-9 * 2.1)
        let inverse = try CommandRunner.run(["privacy", "--sample-rate", "0.01", "--epsilon", "1", "--steps", "1000", "--delta", "1e-5"])
        #expect(inverse.status == 0 && inverse.standardOutput.contains("σ = 1.513"), "\(inverse.all)")
        let unreachable = try CommandRunner.run(["privacy", "--sample-rate", "0.01", "--epsilon", "0.05", "--steps", "1000", "--delta", "1e-5"])
        #expect(unreachable.status == 2 && unreachable.standardError.contains("--epsilon: epsilon=0.05 cannot be reached"), "\(unreachable.all)")
    }

    /// Bad --dp input: exit 2 naming the option, before any training.
    @Test(arguments: [
        (["--dp", "noise=1,clip=0,delta=1e-6"], "clip=0"),
        (["--dp", "noise=-1,clip=1,delta=1e-6"], "noise=-1"),
        (["--dp", "noise=1,clip=1,delta=1e-4"], "delta=0.0001"),
        (["--dp", "epsilon=0.01,clip=1,delta=1e-6"], "epsilon=0.01 cannot be reached"),
        (["--dp", "noise=1,clip=1,delta=1e-6", "--reducer", "topk:ratio=0.01"], "placement=central"),
        (["--dp", "noise=1,clip=1,delta=1e-6", "--model", "resnet8"], "use its group-norm variant (resnet8-gn)"),
    ])
    func badPrivacySettingsExitTwoNamingTheOption(arguments: [String], named: String) throws {
        let outcome = try CommandRunner.run(["train"] + CommandLineTests.quick + ["--steps", "2"] + arguments)
        #expect(outcome.status == 2, "\(outcome.all)")
        #expect(outcome.standardError.contains("--dp: ") && outcome.standardError.contains(named), "\(outcome.standardError)")
    }

    /// noise=0 (clipping only) runs and says ε is infinite; the log, which JSON cannot give an
    /// infinity, carries no ε.
    @Test func aClippingOnlyRunSaysItIsNotPrivate() throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("dp0-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: log) }
        let outcome = try CommandRunner.run(["train"] + CommandLineTests.quick + ["--steps", "2", "--reducer", "sgd",
                                             "--dp", "noise=0,clip=1,delta=1e-6", "--log-file", log.path])
        #expect(outcome.status == 0, "\(outcome.all)")
        #expect(outcome.standardOutput.contains("no privacy, ε = ∞"))
        #expect(!(try String(contentsOf: log, encoding: .utf8)).contains("epsilon"))
    }

    /// A short DP run reports ε on the progress lines, in the log and in the summary.
    @Test func aDPRunReportsEpsilon() throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("dp-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: log) }
        let outcome = try CommandRunner.run(["train"] + CommandLineTests.quick + ["--steps", "4", "--reducer", "powersgd:rank=1",
                                             "--dp", "noise=1.1,clip=1,delta=1e-6,placement=distributed", "--log-file", log.path])
        #expect(outcome.status == 0, "\(outcome.all)")
        #expect(outcome.standardOutput.contains("DP-SGD: noise multiplier σ = 1.1000"))
        #expect(outcome.standardOutput.contains("differential privacy: ε = "))
        #expect(outcome.standardOutput.contains("ε "))
        let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
        #expect(lines.filter { $0.contains("\"record\":\"step\"") && $0.contains("\"epsilon\":") }.count == 4)
    }

    /// ResNet-8 with group norm trains under --dp (the efficient per-example path), and ε is reported.
    @Test func theGroupNormResNetTrainsUnderDP() throws {
        let outcome = try CommandRunner.run(["train", "--model", "resnet8-gn", "--dataset", "fashion-mnist", "--workers", "2",
                                             "--batch-size", "8", "--steps", "2", "--reducer", "powersgd:rank=1",
                                             "--dp", "noise=1.1,clip=1,delta=1e-6"])
        #expect(outcome.status == 0, "\(outcome.all)")
        #expect(outcome.standardOutput.contains("differential privacy: ε = "), "\(outcome.standardOutput)")
    }

    /// `bench dp` measures the MLP and ResNet-8 with group norm on the efficient path and lists the
    /// refused models with their reason (figures are not asserted: the machine is shared).
    @Test func benchDPMeasuresTheGroupNormResNet() throws {
        let outcome = try CommandRunner.run(["bench", "dp", "--json", "--repeats", "1", "--batch-size", "4"])
        #expect(outcome.status == 0, "\(outcome.all)")
        let report = try JSONSerialization.jsonObject(with: Data(outcome.standardOutput.utf8)) as? [String: Any]
        let models = try #require(report?["models"] as? [[String: Any]])
        let byName = Dictionary(uniqueKeysWithValues: models.compactMap { m in (m["model"] as? String).map { ($0, m) } })
        for name in ["mlp", "resnet8-gn"] {
            #expect(byName[name]?["method"] as? String == "efficient", "\(name)")
            #expect(((byName[name]?["ratio"] as? Double) ?? 0) > 0, "\(name)")
        }
        #expect((byName["resnet8"]?["refused"] as? String)?.contains("resnet8-gn") == true)
    }

    /// `dp-error` splits each step's error exactly: total = noise + compression + 2·cross, the
    /// all-reduce has no compression part, and a rank-1 PowerSGD removes part of the noise.
    @Test func dpErrorSplitsTheErrorIntoNoiseAndCompression() throws {
        let json = FileManager.default.temporaryDirectory.appendingPathComponent("split-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: json) }
        let outcome = try CommandRunner.run(["dp-error"] + CommandLineTests.quick + ["--steps", "3", "--reducers", "sgd,powersgd:rank=1",
                                             "--dp", "noise=2,clip=1,delta=1e-6,placement=distributed", "--json", json.path])
        #expect(outcome.status == 0, "\(outcome.all)")
        let runs = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [[String: Any]])
        #expect(runs.count == 2)
        for (k, run) in runs.enumerated() {
            let steps = try #require(run["steps"] as? [[String: Double]])
            #expect(steps.count == 3)
            for s in steps {
                let sum = s["noiseSquared"]! + s["compressionSquared"]! + 2 * s["cross"]!
                #expect(abs(s["totalSquared"]! - sum) <= 1e-6 * s["totalSquared"]!, "\(s)")
                #expect(s["noiseSquared"]! > 0)
                if k == 0 { #expect(s["compressionSquared"]! < 1e-9 * s["noiseSquared"]!) } else { #expect(s["noiseRemoved"]! > 0.1) }
            }
        }
        let missing = try CommandRunner.run(["dp-error"] + CommandLineTests.quick + ["--steps", "1"])
        #expect(missing.status == 2 && missing.standardError.contains("--dp is required"), "\(missing.all)")
        // A reducer whose output carries momentum has no split against one step's average.
        let momentum = try CommandRunner.run(["dp-error"] + CommandLineTests.quick + ["--steps", "1", "--dp", "noise=1,clip=1,delta=1e-5",
                                                                                      "--reducers", "sgd,topk:ratio=0.1,worker-momentum=0.9"])
        #expect(momentum.status == 2 && momentum.standardError.contains("carries momentum"), "\(momentum.all)")
    }
}
