import Collectives
import Dispatch
import GradientCompression
import LinearAlgebra

/// What one reducer puts on the network in one step, as the network model needs it: the step's
/// collectives (kind and per-rank payload), plus its local compression time.
///
/// The per-rank payload of every all-reduce and all-gather method here does not depend on the
/// worker count, so traffic measured at any W re-projects to any other W; what does depend on W
/// (the all-gather's received volume, the ring's fan-out) is in `NetworkModel`'s formulas.
/// Variable-length all-gathers (sparse codes) are represented by rank 0's message.
public struct ReducerTraffic: Sendable, Codable, Equatable {
    public var reducer: String
    public var collectives: [TrafficRecord]
    /// Seconds per step outside collectives (compression, decompression, error feedback).
    public var compressionSeconds: Double

    public init(reducer: String, collectives: [TrafficRecord], compressionSeconds: Double = 0) {
        self.reducer = reducer
        self.collectives = collectives
        self.compressionSeconds = compressionSeconds
    }

    /// A logged run's traffic: the collectives of its last step (methods that warm up, e.g. by
    /// sending uncompressed first, have settled by then) and its mean compression seconds.
    public init(run: RunRecord) throws {
        guard let last = run.steps.last else {
            throw ReportError.emptyProfile("the run of \(run.settings.reducer) has no step records")
        }
        self.init(reducer: run.settings.reducer, collectives: last.collectives,
                  compressionSeconds: run.steps.reduce(0) { $0 + $1.compressionSeconds } / Double(run.steps.count))
    }

    /// Measures a reducer: `workers` in-process workers run it for `steps` steps on seeded
    /// normal gradients of `shapes`; returns rank 0's collectives of the last step and the mean
    /// compression seconds (slowest worker) over the steps. `makeReducer` is called once per worker.
    public static func measure(shapes: [[Int]], workers: Int = 2, steps: Int = 2, seed: UInt64 = 1,
                               makeReducer: @escaping () throws -> any GradientReducer) throws -> ReducerTraffic {
        guard workers >= 1 else { throw ReportError.invalidWorkers(workers) }
        guard steps >= 1, !shapes.isEmpty else {
            throw ReportError.emptyProfile("measuring a reducer needs at least one step and one tensor shape")
        }
        let results = try InProcessGroup.run(workers: workers) { group -> (String, [TrafficRecord], Double) in
            var reducer = try makeReducer()
            var last: ReductionStats?
            var compression = 0.0
            for step in 0..<steps {
                var gradients = shapes.enumerated().map { index, shape in
                    Philox(seed: seed, stream: Philox.stream(UInt64(group.rank), UInt64(step), UInt64(index)))
                        .normalTensor(shape: shape)
                }
                let stats = try reducer.reduce(&gradients, over: group)
                var slowest = [Float(stats.computeSeconds)]
                try group.allReduce(&slowest, operation: .max)
                compression += Double(slowest[0])
                last = stats
            }
            return (reducer.name, last?.collectives ?? [], compression / Double(steps))
        }
        return ReducerTraffic(reducer: results[0].0, collectives: results[0].1, compressionSeconds: results[0].2)
    }
}
