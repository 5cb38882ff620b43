import Collectives
import Foundation

/// Projects time per step and speedup for W = 1…64 workers on several networks, from a
/// `SimulationProfile`: "when does compression pay off?" without a cluster.
///
/// Step time on W workers of network N = compute + optimizer + the reducer's compression time
/// + N's projected time of the reducer's collectives on W ranks (`NetworkModel.time(of:workers:)`;
/// no overlap of computation and communication), each a mean per step over a whole period for a
/// reducer with a periodic step (`ReducerTraffic`). Compute per worker is fixed (weak scaling:
/// each worker keeps its batch), so W workers process W batches per step.
///
/// - `speedup` = W · T_baseline(1) / T(W): throughput relative to one worker running the baseline
///   (1 for the baseline at W = 1; ideal scaling is W).
/// - `versusBaseline` = T_baseline(W) / T(W) on the same network: above 1, the reducer pays off.
public struct ScalingSimulation: Sendable {
    public struct Row: Sendable, Equatable {
        public var reducer: String
        public var network: String
        public var workers: Int
        /// compute + optimizer + compression.
        public var localSeconds: Double
        /// Projected seconds of the step's collectives.
        public var communicationSeconds: Double
        public var stepSeconds: Double { localSeconds + communicationSeconds }
        public var speedup: Double
        public var versusBaseline: Double
    }

    public static let defaultWorkerCounts = [1, 2, 4, 8, 16, 32, 64]

    public let profile: SimulationProfile
    public let networks: [(name: String, model: NetworkModel)]
    public let workerCounts: [Int]
    /// Row for every (reducer, network, W), reducers and networks in the order given.
    public let rows: [Row]

    /// Networks by name (presets or `<bandwidth>[,<latency>]`, see `NetworkModel(parsing:)`).
    public init(profile: SimulationProfile, networks: [String], workerCounts: [Int] = defaultWorkerCounts) throws {
        try self.init(profile: profile, networks: try networks.map { ($0, try NetworkModel(parsing: $0)) },
                      workerCounts: workerCounts)
    }

    public init(profile: SimulationProfile, networks: [(name: String, model: NetworkModel)],
                workerCounts: [Int] = defaultWorkerCounts) throws {
        guard !networks.isEmpty else { throw ReportError.emptyProfile("no network to simulate") }
        guard !workerCounts.isEmpty else { throw ReportError.emptyProfile("no worker count to simulate") }
        if let bad = workerCounts.first(where: { $0 < 1 }) { throw ReportError.invalidWorkers(bad) }
        guard profile.computeSeconds.isFinite, profile.computeSeconds >= 0,
              profile.optimizerSeconds.isFinite, profile.optimizerSeconds >= 0 else {
            throw ReportError.emptyProfile("compute seconds \(profile.computeSeconds) and optimizer seconds "
                                           + "\(profile.optimizerSeconds) must be finite and not negative")
        }
        let baseline = try profile.baselineTraffic()
        let base = profile.computeSeconds + profile.optimizerSeconds
        let single = base + baseline.compressionSeconds  // the baseline on one worker: nothing on the network
        guard single > 0 else { throw ReportError.emptyProfile("the baseline's time per step on one worker is 0") }
        self.profile = profile
        self.networks = networks
        self.workerCounts = workerCounts
        var rows: [Row] = []
        for traffic in profile.reducers {
            for network in networks {
                for workers in workerCounts {
                    let local = base + traffic.compressionSeconds
                    let communication = traffic.communicationSeconds(on: network.model, workers: workers)
                    let baselineStep = base + baseline.compressionSeconds
                        + baseline.communicationSeconds(on: network.model, workers: workers)
                    rows.append(Row(reducer: traffic.reducer, network: network.name, workers: workers,
                                    localSeconds: local, communicationSeconds: communication,
                                    speedup: Double(workers) * single / (local + communication),
                                    versusBaseline: baselineStep / (local + communication)))
                }
            }
        }
        self.rows = rows
    }

    /// One row per (reducer, network, W): times in human units, speedups with 3 significant digits.
    public func markdown() -> String {
        TextFormatting.markdownTable(
            header: ["reducer", "network", "workers", "local time/step", "communication/step", "time/step",
                     "speedup vs 1-worker \(profile.baseline)", "vs \(profile.baseline) at same W"],
            rows: rows.map { row in
                [row.reducer, row.network, String(row.workers), TextFormatting.seconds(row.localSeconds),
                 TextFormatting.seconds(row.communicationSeconds), TextFormatting.seconds(row.stepSeconds),
                 TextFormatting.significant(row.speedup) + "×", TextFormatting.significant(row.versusBaseline) + "×"]
            })
    }

    /// One line per (reducer other than the baseline, network): at which worker counts above 1 it
    /// beats the baseline on that network (`versusBaseline` > 1), and its best ratio.
    public func verdicts() -> [String] {
        let baseline = profile.baseline
        var lines: [String] = []
        for traffic in profile.reducers where traffic.reducer != baseline {
            for network in networks {
                let rows = rows.filter { $0.reducer == traffic.reducer && $0.network == network.name && $0.workers > 1 }
                let faster = rows.filter { $0.versusBaseline > 1 }.map { String($0.workers) }
                let slower = rows.filter { $0.versusBaseline <= 1 }.map { String($0.workers) }
                var line = "\(traffic.reducer) on \(network.name): "
                if let best = rows.max(by: { $0.versusBaseline < $1.versusBaseline }), !faster.isEmpty {
                    line += "faster than \(baseline) at W = \(faster.joined(separator: ", "))"
                        + String(format: " (best %.2f× at W = %d)", best.versusBaseline, best.workers)
                    if !slower.isEmpty { line += "; not at W = \(slower.joined(separator: ", "))" }
                } else {
                    line += "never faster than \(baseline) at the worker counts simulated"
                }
                lines.append(line)
            }
        }
        return lines
    }

    public static let csvHeader = ["reducer", "network", "workers", "local_seconds", "communication_seconds",
                                   "step_seconds", "speedup", "versus_baseline"]

    public func csv() -> String {
        TextFormatting.csvTable(header: Self.csvHeader, rows: rows.map { row in
            [row.reducer, row.network, String(row.workers), TextFormatting.csvNumber(row.localSeconds),
             TextFormatting.csvNumber(row.communicationSeconds), TextFormatting.csvNumber(row.stepSeconds),
             TextFormatting.csvNumber(row.speedup), TextFormatting.csvNumber(row.versusBaseline)]
        })
    }

    /// Speedup vs W (log₂ axis), one line per reducer × network, and the ideal linear scaling dashed.
    public func chart() -> LineChart {
        var series = [LineChart.Series(name: "ideal (linear scaling)",
                                       points: workerCounts.map { (Double($0), Double($0)) }, dashed: true)]
        for traffic in profile.reducers {
            for network in networks {
                series.append(LineChart.Series(
                    name: "\(traffic.reducer) on \(network.name)",
                    points: rows.filter { $0.reducer == traffic.reducer && $0.network == network.name }
                        .map { (Double($0.workers), $0.speedup) },
                    markers: true))
            }
        }
        return LineChart(title: "\(profile.model): speedup vs workers (over 1 worker of \(profile.baseline))",
                         x: .init("workers", scale: .logarithmic(base: 2)),
                         y: .init("speedup", scale: .logarithmic(base: 2)), series: series)
    }
}
