import Collectives
import Foundation
import GradientCompression
import LinearAlgebra
import Testing
@testable import Training

@Suite struct ScalingSimulationTests {
    /// An 8.4M-parameter "large model" (two 1024×4096 matrices and a bias); compute 50 ms per step.
    static let largeShapes = [[1024, 4096], [1024, 4096], [1024]]

    /// The reducers' traffic measured on 2 workers; their compression times (wall clock on a shared
    /// machine) are set to 0 so the projections below have exact hand values.
    static func profile() throws -> SimulationProfile {
        var sgd = try ReducerTraffic.measure(shapes: largeShapes, workers: 2, steps: 1) { UncompressedReducer() }
        var powerSGD = try ReducerTraffic.measure(shapes: largeShapes, workers: 2, steps: 2) {
            try PowerSGD(PowerSGD.Options(rank: 2))
        }
        #expect(sgd.compressionSeconds >= 0 && powerSGD.compressionSeconds > 0)
        sgd.compressionSeconds = 0
        powerSGD.compressionSeconds = 0
        return SimulationProfile(model: "large", computeSeconds: 0.05, optimizerSeconds: 0.005,
                                 reducers: [sgd, powerSGD])
    }

    @Test func measuredTrafficIsTheReducersPayload() throws {
        let profile = try Self.profile()
        let elements = 2 * 1024 * 4096 + 1024
        #expect(profile.reducers[0].reducer == "sgd")
        #expect(profile.reducers[0].collectives.map(\.payloadBytes).reduce(0, +) == 4 * elements)
        // PowerSGD rank 2: P (1024×2) and Q (4096×2) per matrix, the bias uncompressed.
        let factors: Int = 2 * 2 * (1024 + 4096) + 1024
        let powerPayload = profile.reducers[1].collectives.map(\.payloadBytes).reduce(0, +)
        #expect(powerPayload == 4 * factors)
    }

    @Test func baselineSpeedupIsOneOnOneWorkerAndCompressionPaysOffOnSlowNetworks() throws {
        let simulation = try ScalingSimulation(profile: try Self.profile(), networks: ["1gbit", "100gbit"])
        #expect(simulation.rows.count == 2 * 2 * 7)
        let sgdSingle = try #require(simulation.rows.first { $0.reducer == "sgd" && $0.workers == 1 })
        #expect(sgdSingle.speedup == 1)
        #expect(sgdSingle.communicationSeconds == 0)
        for row in simulation.rows where row.reducer == "sgd" { #expect(row.versusBaseline == 1) }
        // SGD on 16 workers of 1 Gbit/s, by hand: 2·15·50 µs + 2·(15/16)·4·elements / 1.25e8 B/s.
        let elements = Double(2 * 1024 * 4096 + 1024)
        let sgd16 = try #require(simulation.rows.first { $0.reducer == "sgd" && $0.network == "1gbit" && $0.workers == 16 })
        let handSeconds: Double = 30 * 50e-6 + 2 * 15.0 / 16 * 4 * elements / 1.25e8
        #expect(abs(sgd16.communicationSeconds - handSeconds) < 1e-12)
        #expect(abs(sgd16.speedup - 16 * 0.055 / sgd16.stepSeconds) < 1e-12)
        for workers in [4, 16, 64] {
            let power = try #require(simulation.rows.first {
                $0.reducer.hasPrefix("powersgd") && $0.network == "1gbit" && $0.workers == workers
            })
            #expect(power.versusBaseline > 3, "PowerSGD should beat SGD clearly at W=\(workers) on 1 Gbit/s")
        }
        let markdown = simulation.markdown().split(separator: "\n")
        #expect(markdown.count == 2 + simulation.rows.count)
        let csv = simulation.csv().split(separator: "\n")
        #expect(csv[0] == ScalingSimulation.csvHeader.joined(separator: ","))
        #expect(csv[1] == "sgd,1gbit,1,\(TextFormatting.csvNumber(0.055)),0,\(TextFormatting.csvNumber(0.055)),1,1")
        let svg = simulation.chart().svg()
        // For scripts/check-report.sh: POWERSGD_SIMULATION_OUTPUT=path writes the chart as an HTML page.
        if let path = ProcessInfo.processInfo.environment["POWERSGD_SIMULATION_OUTPUT"] {
            try ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>simulation</title></head><body>\n" + svg
                 + "<pre>" + TextFormatting.html(simulation.markdown()) + "</pre>\n</body></html>\n")
                .write(toFile: path, atomically: true, encoding: .utf8)
        }
        #expect(svg.components(separatedBy: "<polyline").count - 1 == 1 + 4)
        #expect(svg.contains(">sgd on 1gbit</text>") && svg.contains(">powersgd(rank=2) on 100gbit</text>"))
    }

    @Test func allGatherTrafficIsProjectedWithItsReceiveVolume() throws {
        let gather = ReducerTraffic(reducer: "signum", collectives: [
            TrafficRecord(kind: .allGather, payloadBytes: 1000, bytesSent: 1000, bytesReceived: 1000, seconds: 0, workers: 2),
        ])
        let sgd = ReducerTraffic(reducer: "sgd", collectives: [])
        let simulation = try ScalingSimulation(profile: SimulationProfile(model: "m", computeSeconds: 1, reducers: [sgd, gather]),
                                               networks: [("net", NetworkModel(latency: 0, bandwidth: 1000))],
                                               workerCounts: [1, 2, 64])
        // (W−1)·P/β with β = 1000 B/s: 0, 1 and 63 seconds.
        #expect(simulation.rows.filter { $0.reducer == "signum" }.map(\.communicationSeconds) == [0, 1, 63])
        #expect(simulation.rows.filter { $0.reducer == "signum" }.map(\.speedup) == [1, 1, 1])
    }

    /// The verdicts name the worker counts where a reducer beats the baseline and where not, and
    /// say "never" for a reducer that loses everywhere; the baseline gets no line.
    @Test func verdictsNameWhereEachReducerPaysOff() throws {
        // On 1 MB/s without latency SGD's 1 MB all-reduce takes 2(W−1)/W s: 1 s at W = 2, 1.97 s at
        // W = 64. "slow" sends 1 kB but compresses for 1.2 s, so it loses at W = 2 and wins at W = 64.
        let sgd = ReducerTraffic(reducer: "sgd", collectives: [.ringAllReduce(count: 250_000, workers: 2, seconds: 0)])
        let slow = ReducerTraffic(reducer: "slow", collectives: [.ringAllReduce(count: 250, workers: 2, seconds: 0)],
                                  compressionSeconds: 1.2)
        let heavy = ReducerTraffic(reducer: "heavy", collectives: [.ringAllReduce(count: 500_000, workers: 2, seconds: 0)])
        let simulation = try ScalingSimulation(
            profile: SimulationProfile(model: "m", computeSeconds: 1, reducers: [sgd, slow, heavy]),
            networks: [("net", NetworkModel(latency: 0, bandwidth: 1e6))], workerCounts: [1, 2, 64])
        let best = try #require(simulation.rows.first { $0.reducer == "slow" && $0.workers == 64 })
        #expect(best.versusBaseline > 1)
        #expect(simulation.verdicts() == [
            "slow on net: faster than sgd at W = 64" + String(format: " (best %.2f× at W = 64)", best.versusBaseline)
                + "; not at W = 2",
            "heavy on net: never faster than sgd at the worker counts simulated",
        ])
    }

    @Test func profileFromRunsAndBadInput() throws {
        let runs = [try SyntheticRuns.run(reducer: "sgd", payload: 4_000_000, steps: 3, evaluations: []),
                    try SyntheticRuns.run(reducer: "powersgd(rank=2)", payload: 100_000, steps: 3, evaluations: [])]
        let profile = try SimulationProfile(runs: runs)
        #expect(abs(profile.computeSeconds - 0.1) < 1e-15 && abs(profile.optimizerSeconds - 0.005) < 1e-15)
        #expect(profile.reducers.map(\.reducer) == ["sgd", "powersgd(rank=2)"])
        #expect(abs(profile.reducers[1].compressionSeconds - 0.02) < 1e-15)
        #expect(profile.reducers[1].collectives.first?.payloadBytes == 100_000)
        #expect(throws: ReportError.self) { try ScalingSimulation(profile: profile, networks: ["10gbit"], workerCounts: [0]) }
        #expect(throws: NetworkModelError.self) { try ScalingSimulation(profile: profile, networks: ["warp"]) }
        var missing = profile
        missing.baseline = "adam"
        do {
            _ = try ScalingSimulation(profile: missing, networks: ["10gbit"])
            Issue.record("expected an error")
        } catch let error as ReportError {
            #expect(error.description.contains("'adam'"))
        }
    }

    /// PowerSGD+ run for `steps` steps with refresh period `period` on 2 workers: a run record
    /// whose steps carry rank 0's collectives (compression times 1 ms, and 50 ms on refresh steps).
    static func powerSGDPlusRun(period: Int, steps: Int) throws -> RunRecord {
        let shapes = [[64, 32, 3, 3], [128, 64], [64]]
        let perStep = try InProcessGroup.run(workers: 2) { group -> (String, [[TrafficRecord]]) in
            var reducer = try PowerSGDPlus(PowerSGD.Options(rank: 2), period: period)
            var records: [[TrafficRecord]] = []
            for step in 0..<steps {
                var gradients = shapes.enumerated().map { index, shape in
                    Philox(seed: 3, stream: Philox.stream(UInt64(group.rank), UInt64(step), UInt64(index))).normalTensor(shape: shape)
                }
                records.append(try reducer.reduce(&gradients, over: group).collectives)
            }
            return (reducer.name, records)
        }[0]
        let settings = RunSettings(reducer: perStep.0, model: "m", dataset: "d", workers: 2,
                                   projection: try ProjectionTarget(network: "10gbit", workers: 16))
        let records = perStep.1.enumerated().map { step, collectives in
            let payload = collectives.reduce(0) { $0 + $1.payloadBytes }
            return StepRecord(step: step, epoch: 0, loss: 1, payloadBytes: payload, bytesSent: payload, bytesReceived: payload,
                              uncompressedBytes: 0, cumulativePayloadBytes: 0, cumulativeBytesSent: 0, computeSeconds: 0.01,
                              compressionSeconds: step % period == 0 ? 0.05 : 0.001, communicationSeconds: 0,
                              optimizerSeconds: 0, projectedSeconds: 0, collectives: collectives)
        }
        return RunRecord(settings: settings, steps: records)
    }

    /// PowerSGD+'s projected traffic is the mean over a whole refresh period of its per-step
    /// records (the refresh step's SVD traffic once per period), whether the log holds a whole
    /// period or only a few steps of one; its compression time is weighted the same way.
    @Test(arguments: [(period: 4, steps: 8), (period: 100, steps: 4)])
    func powerSGDPlusIsProjectedOverAWholeRefreshPeriod(period: Int, steps: Int) throws {
        let run = try Self.powerSGDPlusRun(period: period, steps: steps)
        #expect(run.settings.reducer == "powersgd+(rank=2,period=\(period))")
        let refresh = run.steps[0], regular = run.steps[1]
        #expect(refresh.payloadBytes > 2 * regular.payloadBytes, "the refresh step sends more: \(refresh.payloadBytes) vs \(regular.payloadBytes)")
        // The last period recorded: the last refresh step, then period − 1 regular steps (the
        // recorded ones, and the last regular one repeated where the log ends earlier). Not the
        // first period when a later one is whole: step 0 also carries the shape-agreement check.
        let lastRefresh = try #require(run.steps.last { $0.step % period == 0 })
        let aPeriod = (0..<period).map { k in run.steps.first { $0.step == lastRefresh.step + k } ?? run.steps.last! }
        let network = try NetworkModel(parsing: "1gbit")
        let meanBytes = Double(aPeriod.reduce(0) { $0 + $1.payloadBytes }) / Double(period)
        let meanSeconds = aPeriod.reduce(0) { $0 + network.time(of: $1.collectives, workers: 16) } / Double(period)
        let meanCompression = aPeriod.reduce(0) { $0 + $1.compressionSeconds } / Double(period)

        let profile = try SimulationProfile(runs: [try SyntheticRuns.run(reducer: "sgd", payload: 4_000_000, steps: 3, evaluations: []), run])
        let traffic = profile.reducers[1]
        #expect(abs(traffic.payloadBytesPerStep - meanBytes) <= 1e-9 * meanBytes)
        #expect(abs(traffic.compressionSeconds - meanCompression) <= 1e-12)
        let simulation = try ScalingSimulation(profile: profile, networks: ["1gbit"], workerCounts: [16])
        let row = try #require(simulation.rows.first { $0.reducer == run.settings.reducer })
        #expect(abs(row.communicationSeconds - meanSeconds) <= 1e-12 * meanSeconds, "\(row.communicationSeconds) vs \(meanSeconds)")
        // The saved profile keeps the period.
        let decoded = try JSONDecoder().decode(SimulationProfile.self, from: try JSONEncoder().encode(profile))
        #expect(decoded == profile)
    }
}
