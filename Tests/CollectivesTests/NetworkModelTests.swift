import Testing
@testable import Collectives

@Suite struct NetworkModelTests {
    /// ResNet-18's gradient (11,173,962 floats = 44,695,848 bytes) all-reduced by 16 workers on
    /// 10 Gbit/s (1.25e9 B/s, α = 10 µs): 2·15·10 µs + 2·15/16·44,695,848 / 1.25e9 s
    /// = 0.3 ms + 67.0437720 ms = 67.3437720 ms.
    @Test func resnet18AllReduceOn16WorkersAt10Gbit() throws {
        let net = try NetworkModel(parsing: "10gbit")
        let t = net.time(of: .allReduce, payloadBytes: 44_695_848, workers: 16)
        #expect(abs(t - 0.067_343_772) < 1e-9)
    }

    /// Hand computations for the other kinds, on 100 Mbit/s with 50 µs (12.5e6 B/s).
    @Test func everyCollectiveKindEqualsItsFormula() throws {
        let net = try NetworkModel(parsing: "100mbit,50us")
        #expect(abs(net.latency - 50e-6) < 1e-15 && net.bandwidth == 12.5e6)
        // all-gather, 8 workers, 1 MB each: 7·50 µs + 7·1e6/12.5e6 s = 0.35 ms + 560 ms.
        #expect(abs(net.time(of: .allGather, payloadBytes: 1_000_000, workers: 8) - 0.56035) < 1e-12)
        // broadcast, 5 workers (3 tree rounds), 1000 bytes: 3·(50 µs + 80 µs) = 390 µs.
        #expect(abs(net.time(of: .broadcast, payloadBytes: 1000, workers: 5) - 390e-6) < 1e-12)
        // barrier, 16 workers: 4 rounds of 50 µs.
        #expect(abs(net.time(of: .barrier, payloadBytes: 0, workers: 16) - 200e-6) < 1e-12)
        for kind in CollectiveKind.allCases { #expect(net.time(of: kind, payloadBytes: 1 << 20, workers: 1) == 0) }
    }

    @Test func recordsAreReprojectedToAnotherWorkerCount() throws {
        let net = try NetworkModel(parsing: "1gbit")
        let records = [
            TrafficRecord(kind: .allReduce, payloadBytes: 4000, bytesSent: 4000, bytesReceived: 4000, seconds: 0.1, workers: 2),
            TrafficRecord(kind: .allGather, payloadBytes: 100, bytesSent: 100, bytesReceived: 100, seconds: 0.1, workers: 2),
        ]
        let expected = net.time(of: .allReduce, payloadBytes: 4000, workers: 16) + net.time(of: .allGather, payloadBytes: 100, workers: 16)
        #expect(net.time(of: records, workers: 16) == expected)
    }

    @Test func parsesPresetsUnitsAndLatencies() throws {
        #expect(try NetworkModel(parsing: "25gbit").bandwidth == 25e9 / 8)
        let spaced = try NetworkModel(parsing: " 2.5GBit , 0.2ms ")
        #expect(abs(spaced.latency - 0.2e-3) < 1e-15 && spaced.bandwidth == 2.5e9 / 8)
        #expect(try NetworkModel(parsing: "40gbit").latency == 10e-6)
        #expect("\(try NetworkModel(parsing: "10gbit"))" == "10 Gbit/s, 10 µs latency")
    }

    @Test(arguments: ["", "fast", "10", "-1gbit", "10gbit,", "10gbit,fast", "10gbit,5us,1", "0gbit", "nangbit"])
    func rejectsNonsenseNamingTheText(text: String) {
        #expect {
            _ = try NetworkModel(parsing: text)
        } throws: { error in
            "\(error)".contains("network '\(text)'")
        }
    }
}
