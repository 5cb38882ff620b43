import ArgumentParser
import Collectives
import CollectivesMPI
import Foundation

/// `powersgd bench network`: run as an MPI job (under `mpirun` or `powersgd cluster`), it times
/// point-to-point messages (at 2 ranks), all-reduce and all-gather over message sizes from 4 B
/// up to 64 MB, fits the network model's α and β to the collective times, and writes them as a
/// network file that `--network FILE.json` reads. Rank 0 prints the measurements as JSON.
///
/// Fit: `NetworkModel.fit` (β from the large messages, α from the small ones). Every figure is the slowest rank's median of `--repeats` operations, each after a barrier, timed
/// through the same `MPICommunicator` training uses (with its per-call signature check, which
/// the fitted α therefore includes). Sizes grow ×4; a size is not measured when the previous
/// one, scaled by 4, would exceed `--max-seconds` per operation, which keeps a run on a slow link short.
struct BenchNetwork: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "network",
        abstract: "Latency, bandwidth, all-reduce and all-gather times from 4 B to 64 MB over MPI; fits α and β and writes a network file.")

    @Option(help: "Write the fitted network file here (for --network FILE.json).")
    var output: String?

    @Option(help: "Timed operations per size (the median is used).")
    var repeats = 5

    @Option(help: "Largest message, in bytes (at most 64 MB).")
    var maxBytes = 64 << 20

    @Option(help: "Skip the sizes whose operation would take longer than this (seconds), judged from the previous size.")
    var maxSeconds = 2.0

    @Flag(help: "Print JSON (the output is JSON anyway; accepted for symmetry with the other benchmarks).")
    var json = false

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1 (got \(repeats))") }
        guard (4...(64 << 20)).contains(maxBytes) else { throw ValidationError("--max-bytes must be between 4 and 67108864 (got \(maxBytes))") }
        guard maxSeconds > 0, maxSeconds.isFinite else { throw ValidationError("--max-seconds must be positive (got \(maxSeconds))") }
    }

    struct Measurement: Codable {
        var collective: String
        var bytes: Int
        var workers: Int
        var seconds: Double
        /// The fitted model's time for the same operation, and measured / model.
        var modelSeconds: Double?
        var ratio: Double?
    }

    struct Report: Codable {
        var workers: Int
        var loadAverage1m: Double?
        var repeats: Int
        /// One-way time of a message between ranks 0 and 1 (half a ping-pong), 2 ranks only.
        var pointToPoint: [Measurement]
        var collectives: [Measurement]
        /// α–β fit to the point-to-point times (2 ranks only) and to the collectives.
        var pointToPointLatency: Double?
        var pointToPointBandwidth: Double?
        var latency: Double
        var bandwidth: Double
        var network: String
        var notes: String
    }

    func run() throws {
        let comm: MPICommunicator
        do { comm = try MPICommunicator() } catch { throw RuntimeError("bench network: \(error)") }
        defer { try? MPICommunicator.finalize() }
        guard comm.size >= 2 else {
            throw ValidationError("bench network measures a network between MPI ranks: run it with 2 or more, "
                                  + "e.g. 'mpirun -np 2 powersgd bench network' or 'powersgd cluster --hosts 2 --link 100mbit -- bench network'")
        }
        let sizes = Array(sequence(first: 4, next: { $0 * 4 <= maxBytes ? $0 * 4 : nil }))

        var pointToPoint: [NetworkSample] = []
        if comm.size == 2 {
            pointToPoint = try measure(comm, sizes: sizes) { buffer in
                // A broadcast between two ranks is one message; there and back is a round trip.
                try comm.broadcast(buffer, root: 0)
                try comm.broadcast(buffer, root: 1)
            }.map { NetworkSample(kind: .broadcast, payloadBytes: $0.bytes, workers: 2, seconds: $0.seconds / 2) }
        }
        var samples: [NetworkSample] = []
        samples += try measure(comm, sizes: sizes) { try comm.allReduce($0, operation: .sum) }
            .map { NetworkSample(kind: .allReduce, payloadBytes: $0.bytes, workers: comm.size, seconds: $0.seconds) }
        samples += try measure(comm, sizes: sizes) { buffer in
            _ = try comm.allGather([UInt8](UnsafeRawBufferPointer(buffer)))
        }.map { NetworkSample(kind: .allGather, payloadBytes: $0.bytes, workers: comm.size, seconds: $0.seconds) }

        let model = try NetworkModel.fit(samples)
        let p2p = pointToPoint.isEmpty ? nil : try? NetworkModel.fit(pointToPoint)
        try writeClusterLedger(comm)
        guard comm.rank == 0 else { return }
        func rows(_ samples: [NetworkSample], _ model: NetworkModel?) -> [Measurement] {
            samples.map { s in
                let projected = model?.time(of: s.kind, payloadBytes: s.payloadBytes, workers: s.workers)
                return Measurement(collective: s.kind == .broadcast ? "point-to-point" : s.kind.rawValue, bytes: s.payloadBytes,
                                   workers: s.workers, seconds: s.seconds, modelSeconds: projected,
                                   ratio: projected.map { s.seconds / $0 })
            }
        }
        let load = MachineDescription.loadAverage()
        let report = Report(workers: comm.size, loadAverage1m: load, repeats: repeats,
                            pointToPoint: rows(pointToPoint, p2p), collectives: rows(samples, model),
                            pointToPointLatency: p2p?.latency, pointToPointBandwidth: p2p?.bandwidth,
                            latency: model.latency, bandwidth: model.bandwidth, network: model.description,
                            notes: "per size the slowest rank's median of \(repeats), each timed after a barrier; latency in s per message, "
                                + "bandwidth in payload bytes/s per link; β: least squares over the collectives, α: median latency of the small ones "
                                + "(ring all-reduce 2(W-1)α + 2(W-1)/W·P/β, ring all-gather (W-1)α + (W-1)P/β)")
        try BenchmarkReport.print(report)
        if let output {
            do {
                try NetworkFile(model: model, source: "powersgd bench network: \(comm.size) ranks, fit to all-reduce and all-gather "
                                + "from 4 B to \(samples.map(\.payloadBytes).max() ?? 0) B").write(path: output)
            } catch {
                throw RuntimeError("--output \(output): cannot write the network file (\(error.localizedDescription))")
            }
        }
    }

    /// Median seconds of `operation` on a buffer of each size, until a size would exceed `maxSeconds`.
    /// Every rank takes the same decisions: the medians are all-reduced (max) before deciding.
    private func measure(_ comm: MPICommunicator, sizes: [Int],
                         _ operation: (UnsafeMutableBufferPointer<Float>) throws -> Void) throws -> [(bytes: Int, seconds: Double)] {
        var results: [(bytes: Int, seconds: Double)] = []
        var previous = 0.0
        for bytes in sizes {
            if previous * 4 > maxSeconds { break }
            var buffer = [Float](repeating: 1, count: bytes / 4)
            var times: [Double] = []
            try buffer.withUnsafeMutableBufferPointer { pointer in
                try operation(pointer)  // warm-up: connections, buffers
                for _ in 0 ..< repeats {
                    try comm.barrier()
                    let start = MPICommunicator.wallTime()
                    try operation(pointer)
                    times.append(MPICommunicator.wallTime() - start)
                }
            }
            times.sort()
            var median = [Float(times[times.count / 2])]
            try comm.allReduce(&median, operation: .max)
            previous = Double(median[0])
            results.append((bytes, previous))
        }
        return results
    }
}
