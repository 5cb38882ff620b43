import Collectives
import Foundation
import Testing

/// `NetworkModel.fit` recovers α and β from collective times, and network files round-trip
/// through `--network FILE.json` with errors that name the file and the key.
@Suite struct NetworkFitTests {
    static func samples(_ model: NetworkModel, workers: Int, noise: (Int) -> Double = { _ in 1 }) -> [NetworkSample] {
        var samples: [NetworkSample] = []
        var i = 0
        for kind in [CollectiveKind.allReduce, .allGather] {
            for bytes in sequence(first: 4, next: { $0 * 4 <= 64 << 20 ? $0 * 4 : nil }) {
                samples.append(NetworkSample(kind: kind, payloadBytes: bytes, workers: workers,
                                             seconds: model.time(of: kind, payloadBytes: bytes, workers: workers) * noise(i)))
                i += 1
            }
        }
        return samples
    }

    @Test(arguments: [2, 4])
    func fitRecoversLatencyAndBandwidthOfExactTimes(workers: Int) throws {
        let truth = NetworkModel(latency: 150e-6, bandwidth: 2.39e6)
        let fitted = try NetworkModel.fit(Self.samples(truth, workers: workers))
        #expect(abs(fitted.latency / truth.latency - 1) < 1e-6, "\(fitted)")
        #expect(abs(fitted.bandwidth / truth.bandwidth - 1) < 1e-6, "\(fitted)")
    }

    @Test func fitIsCloseUnderTenPercentNoise() throws {
        let truth = NetworkModel(latency: 80e-6, bandwidth: 12.5e6)
        // ±10 % alternating: the intercept of the line would let the 64 MB rows' noise swamp α.
        let fitted = try NetworkModel.fit(Self.samples(truth, workers: 2) { $0 % 2 == 0 ? 1.1 : 0.9 })
        #expect(abs(fitted.latency / truth.latency - 1) < 0.15, "\(fitted)")
        #expect(abs(fitted.bandwidth / truth.bandwidth - 1) < 0.15, "\(fitted)")
    }

    /// A token bucket passes small messages at line rate: they must not decide β.
    @Test func messagesInsideAShapersBurstDoNotInflateTheBandwidth() throws {
        let truth = NetworkModel(latency: 40e-6, bandwidth: 2.39e6)
        let burst = 15_140
        let samples = Self.samples(truth, workers: 2).map { sample -> NetworkSample in
            var s = sample
            if s.payloadBytes <= burst { s.seconds = NetworkModel.terms(of: s.kind, payloadBytes: s.payloadBytes, workers: 2).messages * 40e-6 }
            return s
        }
        let fitted = try NetworkModel.fit(samples)
        #expect(abs(fitted.bandwidth / truth.bandwidth - 1) < 0.02, "\(fitted)")
        #expect(abs(fitted.latency / truth.latency - 1) < 0.1, "\(fitted)")
    }

    @Test func fitRefusesTooFewOrSizeIndependentTimes() {
        #expect(throws: NetworkFitError.self) { try NetworkModel.fit([]) }
        let flat = [4, 4096, 1 << 20].map { NetworkSample(kind: .allReduce, payloadBytes: $0, workers: 2, seconds: 1) }
        #expect(throws: NetworkFitError.self) { try NetworkModel.fit(flat + [NetworkSample(kind: .allReduce, payloadBytes: 4, workers: 1, seconds: 1)]) }
    }

    @Test func aNetworkFileIsReadByNetworkParsing() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("network-fit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("calibrated.json").path
        let model = NetworkModel(latency: 123e-6, bandwidth: 4.5e6)
        try NetworkFile(model: model, source: "test").write(path: path)
        #expect(try NetworkModel(parsing: path) == model)

        try Data(#"{"format": "powersgd-network-v1", "latency": 0.001, "bandwidth": -3}"#.utf8)
            .write(to: URL(fileURLWithPath: path))
        let negative = #expect(throws: NetworkModelError.self) { try NetworkModel(parsing: path) }
        #expect(negative?.description.contains("\"bandwidth\"") == true && negative?.description.contains(path) == true)
        try Data(#"{"latency": 0.001}"#.utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: NetworkModelError.self) { try NetworkModel(parsing: path) }
        let missing = #expect(throws: NetworkModelError.self) { try NetworkModel(parsing: directory.path + "/none.json") }
        #expect(missing?.description.contains("none.json") == true)
    }
}
