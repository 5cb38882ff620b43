import ArgumentParser
import Collectives
import Dispatch
import Foundation
import GradientCompression
import LinearAlgebra

/// `powersgd bench reducers`: the whole reduce (compress, collectives, decompress, error
/// feedback) per step on a model's gradient shapes, with W in-process workers, for the SGD
/// baseline and the PowerSGD family; bytes per worker, compression ratio, and PowerSGD's
/// memory-traffic lower bound (the same bytes moved by plain passes in the same run); with
/// `--peer`, PyTorch DDP's communication hooks (`../shared/peers/bench_torch_hook.py`: plain
/// all-reduce, fp16, `powerSGD_hook` ranks 1/2/4, W processes over Gloo) run right after.
struct BenchReducers: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reducers",
        abstract: "Per-step time, bytes and compression ratio of gradient reducers (in-process workers).")

    @Option(help: "Model whose gradient shapes are reduced (resnet18).")
    var model = "resnet18"

    @Option(help: "In-process workers (threads).")
    var workers = 2

    @Option(help: "Timed steps per reducer (the median is reported), after 2 untimed ones.")
    var steps = 10

    @Option(help: "Comma-separated reducer specifications (default: the family's benchmark set).")
    var reducers = "sgd,powersgd:rank=1,powersgd:rank=2,powersgd:rank=4,svd:rank=2,powersgd+:rank=2,period=5,lqsgd:rank=2,bits=8,lgreco:rank=2,period=5,accumulate=2"

    @Flag(help: "Print JSON (the output is always JSON; accepted for symmetry).")
    var json = false

    @OptionGroup var peer: PeerArguments

    struct Row: Codable {
        var reducer: String
        var medianMs: Double
        var meanMs: Double
        var payloadBytesPerWorker: Int
        var bytesSentPerWorker: Int
        var compressionRatio: Double
        var relativeError: Double?
        var collectivesPerStep: Int
        /// The peer hook's median DDP step for the same method, and that step less its
        /// backward-only time (the hook's share), both from this run (with --peer).
        var peerStepMs: Double?
        var peerStepLessBackwardMs: Double?
        /// medianMs over peerStepLessBackwardMs (below 1: faster).
        var ratioToPeer: Double?
        /// The reducer's state after the steps (error memory, warm-start factors, counters), as
        /// its checkpoint (`saveState`) measures it, per worker, and over the model's parameter bytes.
        var stateBytesPerWorker: Int
        var stateOverParameterBytes: Double
        /// How much the process's resident set grew at its peak during the steps over what it
        /// was after every worker had its gradients and a fresh reducer (the state built in the
        /// first step plus the transient buffers of a reduce: messages, packed vectors), per
        /// worker, and over the parameter bytes; nil where /proc cannot be read.
        var peakGrowthBytesPerWorker: Int?
        var peakGrowthOverParameterBytes: Double?
    }
    /// PowerSGD's step against the time plain passes take to move its memory traffic, in the same run.
    struct Bound: Codable {
        var reducer: String
        var bytesReadAndWritten: Int
        /// The median over the timed steps of the passes' time (slowest worker).
        var lowerBoundMs: Double
        var measuredMs: Double
        /// The median over the timed steps of reduce time over the passes' time right after it.
        var ratioToBound: Double
    }
    struct Report: Codable {
        var model: String
        var workers: Int
        var tensors: Int
        var parameters: Int
        /// 4 × parameters: one fp32 copy of the gradient.
        var parameterBytes: Int
        var steps: Int
        var copyBandwidthPerWorkerGBs: Double
        var reducers: [Row]
        var memoryTrafficBounds: [Bound]
        /// The peer's backward-only step (no communication), with --peer.
        var peerBackwardMs: Double?
        var notes: String
    }

    /// One line of bench_torch_hook.py's JSON-lines output.
    struct PeerLine: Decodable {
        var mode: String
        var rank: Int?
        var medianStepSeconds: Double?
        enum CodingKeys: String, CodingKey { case mode, rank, medianStepSeconds = "median_step_s" }
    }

    /// The hook mode and PowerSGD rank the peer script names our reducer by, if it has one.
    static func peerMode(of specification: ReducerSpecification) -> (String, Int)? {
        switch specification.name {
        case "sgd": return ("allreduce", 0)
        case "fp16": return ("fp16", 0)
        case "powersgd" where specification.options.count == 1 && specification.options[0].key == "rank":
            return Int(specification.options[0].value).map { ("powersgd", $0) }
        default: return nil
        }
    }

    func validate() throws {
        guard model == "resnet18" else { throw ValidationError("--model must be resnet18 (got '\(model)')") }
        guard (1...64).contains(workers) else { throw ValidationError("--workers must be in 1...64 (got \(workers))") }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1 (got \(steps))") }
        do { _ = try ReducerSpecification.parseList(reducers).map(Self.makeReducer) } catch {
            throw ValidationError("--reducers: \(error)")
        }
    }

    static func makeReducer(_ specification: ReducerSpecification) throws -> any GradientReducer {
        try ReducerCatalog.make(specification, seed: 0)
    }

    func run() throws {
        BLASThreads.count = 1
        let shapes = ModelShapes.resnet18()
        let parameters = shapes.reduce(0) { $0 + Tensor.elementCount($1) }
        // Per worker while all workers copy their parameter bytes at once (the memory bus is shared).
        let copyBandwidth = Benchmark.copyBandwidth(threads: workers, bytesPerThread: 4 * parameters) / Double(workers)
        var rows: [Row] = []
        var bounds: [Bound] = []
        for specification in try ReducerSpecification.parseList(reducers) {
            let (row, layout, traffic) = try measure(specification, shapes: shapes)
            rows.append(row)
            if specification.name == "powersgd", let layout {
                // Three dependent passes over each compressed matrix (P = M·Q; Q = Mᵀ·P̂ after
                // the P all-reduce; the output after the Q all-reduce): read G and E and write
                // M = E (the last step's residual subtracted on the way), read M, write the
                // output = 5 floats per element, the minimum for an error-feedback method that
                // needs a second read of M after a collective; uncompressed tensors are copied
                // into the packed buffer and back (4 floats). The bound is the time the plainest
                // passes take to move those bytes on every worker at once, in this run.
                // passes take to move those bytes on every worker at once, timed after every
                // reduce step (`PowerStepTraffic`); the ratio is the median of the steps' ratios,
                // which the machine's drifting bandwidth moves less than either time.
                let bytes = 4 * (5 * layout.compressedCount + 4 * layout.uncompressedCount)
                bounds.append(Bound(reducer: row.reducer, bytesReadAndWritten: bytes, lowerBoundMs: median(traffic.map { $0.bound }) * 1e3,
                                    measuredMs: row.medianMs, ratioToBound: median(traffic.map { $0.reduce / $0.bound })))
            }
        }
        // The peer runs after ours, alone on the cores; it appends JSON lines to a file.
        var peerBackwardMs: Double?
        let peerFile = FileManager.default.temporaryDirectory.appendingPathComponent("powersgd-peer-hook-\(getpid()).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: peerFile) }
        if let output = try peer.output(script: "bench_torch_hook.py", arguments: [peerFile, String(workers)],
                                        environment: ["BUCKET_MB": "200"], resultFile: peerFile) {
            let lines = output.split(separator: "\n").compactMap { try? JSONDecoder().decode(PeerLine.self, from: Data($0.utf8)) }
            peerBackwardMs = lines.first { $0.mode == "local_backward_only" }?.medianStepSeconds.map { $0 * 1e3 }
            for (i, specification) in try ReducerSpecification.parseList(reducers).enumerated() {
                guard let (mode, rank) = Self.peerMode(of: specification),
                      let step = lines.first(where: { $0.mode == mode && ($0.rank ?? 0) == rank })?.medianStepSeconds else { continue }
                rows[i].peerStepMs = step * 1e3
                if let backward = peerBackwardMs {
                    rows[i].peerStepLessBackwardMs = step * 1e3 - backward
                    rows[i].ratioToPeer = rows[i].medianMs / (step * 1e3 - backward)
                }
            }
        }
        let report = Report(
            model: model, workers: workers, tensors: shapes.count, parameters: parameters, parameterBytes: 4 * parameters, steps: steps,
            copyBandwidthPerWorkerGBs: copyBandwidth, reducers: rows, memoryTrafficBounds: bounds, peerBackwardMs: peerBackwardMs,
            notes: "Times are the median (and mean) over timed steps of the slowest worker's reduce call, "
                + "in-process workers, 1 BLAS thread each. Copy bandwidth: bytes read + written per second "
                + "per worker while all workers copy \(4 * parameters) bytes at once. PowerSGD's memoryTrafficBounds: after "
                + "every timed step, plain passes move the step's bytes on all workers at once (E += G, sum of E, a fill of "
                + "the output; copies of the uncompressed tensors there and back); ratioToBound is the median of the "
                + "steps' ratios. PowerSGD+ pays a full "
                + "all-reduce and SVDs every period: compare its mean, not its median.")
        try BenchmarkReport.print(report)
    }

    /// One reducer on every worker: 2 untimed steps then `steps` timed ones; each step starts
    /// from the worker's own fixed random gradient (copied in outside the timed region). For
    /// PowerSGD, every timed step is followed by `PowerStepTraffic`'s passes on every worker at
    /// once; returns each timed step's (slowest reduce, slowest passes) in seconds.
    func measure(_ specification: ReducerSpecification, shapes: [[Int]]) throws -> (Row, MatrixLayout?, [(reduce: Double, bound: Double)]) {
        let total = 2 + steps
        let results = try InProcessGroup.run(workers: workers) { group -> ([Double], ReductionStats, String, MatrixLayout?, Int, Int?, [Double]) in
            var reducer = try Self.makeReducer(specification)
            let layout = (reducer as? PowerSGD)?.layout(for: shapes)
            let traffic = layout.map { PowerStepTraffic(compressed: $0.compressedCount, uncompressed: $0.uncompressedCount) }
            defer { traffic?.deallocate() }
            let source = shapes.enumerated().map { index, shape in
                Philox(seed: 99, stream: Philox.stream(UInt64(group.rank), UInt64(index))).normalTensor(shape: shape)
            }
            var gradients = source
            var times: [Double] = [], boundTimes: [Double] = []
            var stats = ReductionStats()
            // Rank 0 measures the whole process once every worker holds its gradients and reducer.
            try group.barrier()
            let before = group.rank == 0 && ResidentMemory.resetPeak() ? ResidentMemory.currentBytes() : nil
            try group.barrier()
            for step in 0..<total {
                for i in gradients.indices {
                    gradients[i].withUnsafeMutableBufferPointer { target in
                        source[i].withUnsafeBufferPointer { target.baseAddress?.update(from: $0.baseAddress!, count: $0.count) }
                    }
                }
                try group.barrier()
                group.traffic.beginStep()
                let start = DispatchTime.now().uptimeNanoseconds
                stats = try reducer.reduce(&gradients, over: group)
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
                if step >= 2 { times.append(seconds) }
                if let traffic, step >= 2 {
                    try group.barrier()
                    let start = DispatchTime.now().uptimeNanoseconds
                    traffic.run()
                    boundTimes.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
                }
            }
            try group.barrier()
            let growth = before.flatMap { b in ResidentMemory.peakBytes().map { $0 - b } }
            var state = StateWriter()
            reducer.saveState(to: &state)
            return (times, stats, reducer.name, layout, state.bytes.count, growth, boundTimes)
        }
        let parameterBytes = Double(4 * shapes.reduce(0) { $0 + Tensor.elementCount($1) })
        let growthPerWorker = results[0].5.map { $0 / workers }
        let perStep = (0..<steps).map { step in results.map { $0.0[step] }.max()! }
        let traffic = results[0].6.indices.map { step in (reduce: perStep[step], bound: results.map { $0.6[step] }.max()!) }
        // Payload of a power step (the refresh steps of PowerSGD+ send the full gradient):
        // the last timed step's statistics.
        let stats = results[0].1
        let row = Row(reducer: results[0].2, medianMs: median(perStep) * 1e3, meanMs: perStep.reduce(0, +) / Double(steps) * 1e3,
                      payloadBytesPerWorker: stats.payloadBytes, bytesSentPerWorker: stats.bytesSent,
                      compressionRatio: stats.compressionRatio, relativeError: stats.relativeError,
                      collectivesPerStep: stats.collectives.count,
                      stateBytesPerWorker: results[0].4, stateOverParameterBytes: Double(results[0].4) / parameterBytes,
                      peakGrowthBytesPerWorker: growthPerWorker,
                      peakGrowthOverParameterBytes: growthPerWorker.map { Double($0) / parameterBytes })
        return (row, results[0].3, traffic)
    }
}

/// The middle value of `values` (the mean of the two middle ones for an even count).
private func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

/// One worker's buffers for a PowerSGD step's memory traffic moved by the plainest passes that
/// move it: E += G (read 2 floats, write 1), Σ E (read 1) and a fill of the output (write 1) over
/// the compressed elements, and two copies of the uncompressed ones (into a packed buffer and
/// back). Run on every worker at once, since the workers share the memory bus.
private struct PowerStepTraffic {
    let g, e, output, packed, unpacked: UnsafeMutableBufferPointer<Float>

    init(compressed: Int, uncompressed: Int) {
        func filled(_ count: Int, _ value: Float) -> UnsafeMutableBufferPointer<Float> {
            let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, count))
            b.initialize(repeating: value)
            return UnsafeMutableBufferPointer(rebasing: b[0..<count])
        }
        (g, e, output) = (filled(compressed, 1), filled(compressed, 0), filled(compressed, 0))
        (packed, unpacked) = (filled(uncompressed, 1), filled(uncompressed, 0))
    }

    func run() {
        Vector.add(UnsafeBufferPointer(g), to: e)
        let sum = Vector.sum(UnsafeBufferPointer(e))
        // memset: for large fills glibc's stores skip reading each line first, as the streamed
        // output pass's do. The sum lands in the output so that the read is not optimized away.
        memset(output.baseAddress!, 0, 4 * output.count)
        if output.count > 0 { output[0] = sum }
        if packed.count > 0 {
            unpacked.baseAddress!.update(from: packed.baseAddress!, count: packed.count)
            packed.baseAddress!.update(from: unpacked.baseAddress!, count: packed.count)
        }
    }

    func deallocate() { for b in [g, e, output, packed, unpacked] { b.baseAddress!.deallocate() } }
}
