import Collectives
import Dispatch
import GradientCompression
import LinearAlgebra

/// What one reducer puts on the network per step, as the network model needs it: the step's
/// collectives (kind and per-rank payload), plus its local compression time.
///
/// The per-rank payload of every all-reduce and all-gather method here does not depend on the
/// worker count, so traffic measured at any W re-projects to any other W; what does depend on W
/// (the all-gather's received volume, the ring's fan-out) is in `NetworkModel`'s formulas.
/// Variable-length all-gathers (sparse codes) are represented by rank 0's message.
///
/// A reducer with a periodic step (PowerSGD+'s subspace refresh, once every `period` steps) is
/// described by both kinds of step: `collectives` are a regular step's and `periodicCollectives`
/// the refresh step's, and every projection is the mean over a whole period.
public struct ReducerTraffic: Sendable, Codable, Equatable {
    public var reducer: String
    /// The collectives of a step (of a regular step, when there is a periodic one).
    public var collectives: [TrafficRecord]
    /// Mean seconds per step outside collectives (compression, decompression, error feedback),
    /// over a whole period when there is a periodic step.
    public var compressionSeconds: Double
    /// Steps per period of the periodic step (PowerSGD+'s `period`); nil: every step is alike.
    public var period: Int?
    /// The collectives of the periodic step, which replaces one regular step per period.
    public var periodicCollectives: [TrafficRecord]?

    public init(reducer: String, collectives: [TrafficRecord], compressionSeconds: Double = 0,
                period: Int? = nil, periodicCollectives: [TrafficRecord]? = nil) {
        self.reducer = reducer
        self.collectives = collectives
        self.compressionSeconds = compressionSeconds
        self.period = period
        self.periodicCollectives = periodicCollectives
    }

    /// One recorded step: its number, its collectives and its compression seconds.
    public typealias Step = (step: Int, collectives: [TrafficRecord], compressionSeconds: Double)

    /// The traffic of recorded steps of `reducer` (its display name). For PowerSGD+ the last
    /// refresh step and the last regular step recorded describe a whole period, and the
    /// compression time is their means weighted 1 : period − 1. Otherwise: the last step's
    /// collectives (methods that warm up, e.g. by sending uncompressed first, have settled by
    /// then) and the mean compression seconds over all steps.
    public init(reducer: String, steps: [Step]) throws {
        guard let last = steps.last else {
            throw ReportError.emptyProfile("the run of \(reducer) has no step records")
        }
        if let schedule = Self.refreshSchedule(ofReducerNamed: reducer), schedule.period > 1 {
            let compressed = steps.filter { $0.step >= schedule.start }
            let isRefresh = { (step: Step) in (step.step - schedule.start) % schedule.period == 0 }
            let refreshes = compressed.filter(isRefresh), regular = compressed.filter { !isRefresh($0) }
            if let refresh = refreshes.last, let step = regular.last {
                let period = Double(schedule.period)
                let compression = (mean(refreshes.map(\.compressionSeconds))
                                   + (period - 1) * mean(regular.map(\.compressionSeconds))) / period
                self.init(reducer: reducer, collectives: step.collectives, compressionSeconds: compression,
                          period: schedule.period, periodicCollectives: refresh.collectives)
                return
            }
        }
        self.init(reducer: reducer, collectives: last.collectives, compressionSeconds: mean(steps.map(\.compressionSeconds)))
    }

    /// A logged run's traffic (see `init(reducer:steps:)`).
    public init(run: RunRecord) throws {
        try self.init(reducer: run.settings.reducer,
                      steps: run.steps.map { ($0.step, $0.collectives, $0.compressionSeconds) })
    }

    /// PowerSGD+'s refresh schedule from its display name (`powersgd+(rank=2,period=100)`, with
    /// `start-iteration=S` when the compression starts late): refreshes at steps S + k · period.
    public static func refreshSchedule(ofReducerNamed name: String) -> (period: Int, start: Int)? {
        let prefix = "powersgd+("
        guard name.hasPrefix(prefix), name.hasSuffix(")") else { return nil }
        var options: [String: String] = [:]
        for part in name.dropFirst(prefix.count).dropLast().split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map(String.init)
            if pair.count == 2 { options[pair[0]] = pair[1] }
        }
        guard let period = options["period"].flatMap({ Int($0) }), period >= 1 else { return nil }
        return (period, options["start-iteration"].flatMap { Int($0) } ?? 0)
    }

    /// Mean projected seconds per step of the collectives on `workers` ranks of `network`.
    public func communicationSeconds(on network: NetworkModel, workers: Int) -> Double {
        meanPerStep { network.time(of: $0, workers: workers) }
    }

    /// Mean payload bytes per rank per step.
    public var payloadBytesPerStep: Double {
        meanPerStep { Double($0.reduce(0) { $0 + $1.payloadBytes }) }
    }

    private func meanPerStep(_ value: ([TrafficRecord]) -> Double) -> Double {
        guard let period, period > 1, let periodicCollectives else { return value(collectives) }
        return (value(periodicCollectives) + Double(period - 1) * value(collectives)) / Double(period)
    }

    /// Measures a reducer: `workers` in-process workers run it for `steps` steps on seeded
    /// normal gradients of `shapes`; returns rank 0's traffic over the steps
    /// (`init(reducer:steps:)`), compression seconds the slowest worker's. `makeReducer` is
    /// called once per worker.
    public static func measure(shapes: [[Int]], workers: Int = 2, steps: Int = 2, seed: UInt64 = 1,
                               makeReducer: @escaping () throws -> any GradientReducer) throws -> ReducerTraffic {
        guard workers >= 1 else { throw ReportError.invalidWorkers(workers) }
        guard steps >= 1, !shapes.isEmpty else {
            throw ReportError.emptyProfile("measuring a reducer needs at least one step and one tensor shape")
        }
        let results = try InProcessGroup.run(workers: workers) { group -> (String, [Step]) in
            var reducer = try makeReducer()
            var records: [Step] = []
            for step in 0..<steps {
                var gradients = shapes.enumerated().map { index, shape in
                    Philox(seed: seed, stream: Philox.stream(UInt64(group.rank), UInt64(step), UInt64(index)))
                        .normalTensor(shape: shape)
                }
                let stats = try reducer.reduce(&gradients, over: group)
                var slowest = [Float(stats.computeSeconds)]
                try group.allReduce(&slowest, operation: .max)
                records.append((step, stats.collectives, Double(slowest[0])))
            }
            return (reducer.name, records)
        }
        return try ReducerTraffic(reducer: results[0].0, steps: results[0].1)
    }
}

private func mean(_ values: [Double]) -> Double {
    values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
}
