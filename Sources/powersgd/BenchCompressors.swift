import ArgumentParser
import Foundation
import GradientCompression
import LinearAlgebra

/// `powersgd bench compressors`: encode and decode time of every element-wise method on one
/// gradient of ResNet-18's size (11,173,962 floats), on one thread, against the memory bound
/// of one read of the input; with `--peer`, against PyTorch GRACE-style compressors
/// (`../shared/peers/peer_compressors.py`) run right after, on the same machine.
struct BenchCompressors: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "compressors",
        abstract: "Encode/decode time, message size and bits per element of every quantizer, sparsifier and sign method.")

    @Flag(help: "Print JSON (the output is always JSON; the flag is accepted for symmetry).")
    var json = false

    @Option(help: "Timed repetitions per measurement (the median is reported).")
    var repeats = 5

    @Option(help: "Elements of the benchmark gradient (default: ResNet-18's 11,173,962).")
    var elements = BenchCompressors.resnet18Elements

    /// ResNet-18's (10 classes) parameter count.
    static let resnet18Elements = ModelShapes.resnet18().reduce(0) { $0 + Tensor.elementCount($1) }

    struct Row: Codable {
        var method: String
        var shape: [Int]
        /// How many tensors the times are for (the per-tensor rows: ResNet-18's shapes).
        var tensors: Int
        /// The copy bandwidth measured right before this row, which its bounds use.
        var copyBandwidthGBs: Double
        var encodeMs: Double
        var decodeMs: Double
        var messageBytes: Int
        var bitsPerElement: Double
        /// encode time / (one read of the input at copy bandwidth).
        var encodeRatioToBound: Double
        var decodeRatioToBound: Double
        /// One read of the input plus one write of the message at copy bandwidth: the least time
        /// any encoder producing this message can take on this machine.
        var encodeReadWriteBoundMs: Double
        var peerEncodeMs: Double?
        var peerDecodeMs: Double?
        /// Ours over the peer's (below 1: faster), both from this run.
        var encodeRatioToPeer: Double?
        var decodeRatioToPeer: Double?
        var goalEncodeMs: Double?
        /// The peer script's names of the matching encode and decode lines.
        var peerNames: PeerNames?
    }

    struct PeerNames: Codable {
        var encode: String
        var decode: String?
    }

    struct Report: Codable {
        var elements: Int
        var threads: Int
        var copyBandwidthGBs: Double
        var oneReadBoundMs: Double
        /// The 1-minute load average of the machine when the run started and when it ended.
        var loadAverageAtStart: Double
        var loadAverageAtEnd: Double
        var methods: [Row]
        var notes: String
    }

    @Option(help: "Only the methods whose name starts with one of these comma-separated prefixes (e.g. qsgd,topk).")
    var only: String?

    @OptionGroup var peer: PeerArguments

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1 (got \(repeats))") }
        guard elements >= 1024 else { throw ValidationError("--elements must be at least 1024 (got \(elements))") }
    }

    func run() throws {
        BLASThreads.count = 1
        let loadAtStart = MachineDescription.loadAverage()
        // Re-measured right before each row: on a shared machine the bandwidth drifts between rows.
        var copy = Benchmark.copyBandwidth()
        let copyAtStart = copy
        let gradient = Philox(seed: 1, stream: 5).normalTensor(shape: [elements], standardDeviation: 1e-3)
        var rows: [Row] = []
        let key = CompressionKey(rank: 0, step: 0, tensor: 0)

        func bound(_ count: Int) -> Double { Double(4 * count) / (copy * 1e9) }
        func readWriteBound(_ count: Int, _ messageBytes: Int) -> Double { Double(4 * count + messageBytes) / (copy * 1e9) }

        let prefixes = only.map { $0.split(separator: ",").map(String.init) }
        func selected(_ name: String) -> Bool { prefixes.map { $0.contains { name.hasPrefix($0) } } ?? true }

        func measure(_ c: some Compressor, on t: Tensor, peer: PeerNames? = nil, goal: Double? = nil) throws {
            try measure(c, on: [t], method: c.name, peer: peer, goal: goal)
        }
        /// Encodes (then decodes) `tensors` one after another, as a training step calls the
        /// compressor per tensor; the times are for all of them.
        func measure(_ c: some Compressor, on tensors: [Tensor], method: String, peer: PeerNames? = nil, goal: Double? = nil) throws {
            guard selected(c.name) else { return }
            copy = Benchmark.copyBandwidth()
            var messages = [[UInt8]](repeating: [], count: tensors.count)
            let encode = try Benchmark.medianSeconds(repeats: repeats) {
                for (i, t) in tensors.enumerated() {
                    messages[i] = try t.withUnsafeBufferPointer { try c.encode($0, shape: t.shape, key: CompressionKey(rank: 0, step: 0, tensor: i)) }
                }
            }
            var outs = tensors.map { [Float](repeating: 0, count: $0.count) }
            let decode = try Benchmark.medianSeconds(repeats: repeats) {
                for (i, t) in tensors.enumerated() {
                    try messages[i].withUnsafeBytes { m in
                        try outs[i].withUnsafeMutableBufferPointer { o in
                            try c.decode(m, shape: t.shape, key: CompressionKey(rank: 0, step: 0, tensor: i), weight: 1, accumulatingInto: o)
                        }
                    }
                }
            }
            let count = tensors.reduce(0) { $0 + $1.count }, bytes = messages.reduce(0) { $0 + $1.count }
            let b = bound(count)
            rows.append(Row(method: method, shape: tensors.count == 1 ? tensors[0].shape : [count], tensors: tensors.count,
                            copyBandwidthGBs: copy, encodeMs: encode * 1e3, decodeMs: decode * 1e3,
                            messageBytes: bytes, bitsPerElement: Double(8 * bytes) / Double(count),
                            encodeRatioToBound: encode / b, decodeRatioToBound: decode / b,
                            encodeReadWriteBoundMs: readWriteBound(count, bytes) * 1e3,
                            goalEncodeMs: goal, peerNames: peer))
        }

        try measure(QSGD(levels: 64, bucketSize: 512, scaling: .l2, format: .elias), on: gradient, peer: PeerNames(encode: "qsgd_s64_encode", decode: "qsgd_decode"), goal: 15)
        try measure(QSGD(levels: 64, bucketSize: 512, scaling: .l2, format: .fixedWidth), on: gradient, peer: PeerNames(encode: "qsgd_s64_encode", decode: "qsgd_decode"))
        try measure(QSGD(levels: 64, bucketSize: 512, scaling: .max, format: .elias), on: gradient)
        try measure(QSGD(levels: 1, bucketSize: 512, scaling: .l2, format: .elias), on: gradient)
        try measure(TernGrad(clip: 2.5), on: gradient)
        // TernGrad's scaler is per tensor (Wen et al. 2017 ternarize layer by layer), so its
        // encode reads each tensor twice (the scaler, then the fields): on one 44.7 MB vector
        // the second read comes from memory again; per ResNet-18 tensor (at most 9.4 MB) from
        // the last-level cache. Both are measured.
        if elements == Self.resnet18Elements {
            var offset = 0
            let layers = try ModelShapes.resnet18().map { shape -> Tensor in
                let count = Tensor.elementCount(shape)
                defer { offset += count }
                return try Tensor(shape: shape, scalars: Array(gradient.scalars[offset ..< offset + count]))
            }
            try measure(TernGrad(clip: 2.5), on: layers, method: TernGrad(clip: 2.5).name + " per ResNet-18 tensor")
        }
        try measure(SignCompressor(scaling: .none), on: gradient)
        try measure(SignCompressor(scaling: .meanMagnitude), on: gradient, peer: PeerNames(encode: "sign_scaled"), goal: 5)
        try measure(TopK(ratio: 0.01, selection: .exact), on: gradient, peer: PeerNames(encode: "topk_1pct"), goal: 20)
        try measure(TopK(ratio: 0.01, selection: .sampled), on: gradient, peer: PeerNames(encode: "topk_1pct"), goal: 20)
        try measure(TopK(ratio: 0.001, selection: .sampled), on: gradient)
        try measure(OneBitSGD(), on: (try? gradient.reshaped(to: [elements / 6, 6])) ?? gradient)
        try measure(HalfPrecisionCompressor(.fp16), on: gradient, peer: PeerNames(encode: "fp16_cast"), goal: 3)
        try measure(HalfPrecisionCompressor(.bf16), on: gradient)

        // Random-K is linear: its "message" is k fp32 coefficients for the all-reduce.
        let randomK = try RandomK(ratio: 0.01)
        if selected(randomK.name) {
        copy = Benchmark.copyBandwidth()
        var coefficients = [Float](repeating: 0, count: randomK.coefficientCount(shape: gradient.shape))
        var out = [Float](repeating: 0, count: elements)
        let rkEncode = try gradient.withUnsafeBufferPointer { v in try coefficients.withUnsafeMutableBufferPointer { c in
            try Benchmark.medianSeconds(repeats: repeats) { try randomK.encode(v, shape: gradient.shape, key: key, into: c) } } }
        let rkDecode = coefficients.withUnsafeBufferPointer { c in out.withUnsafeMutableBufferPointer { o in
            Benchmark.medianSeconds(repeats: repeats) { randomK.decode(c, shape: gradient.shape, key: key, into: o) } } }
        rows.append(Row(method: randomK.name, shape: gradient.shape, tensors: 1, copyBandwidthGBs: copy, encodeMs: rkEncode * 1e3, decodeMs: rkDecode * 1e3,
                        messageBytes: 4 * coefficients.count, bitsPerElement: Double(32 * coefficients.count) / Double(elements),
                        encodeRatioToBound: rkEncode / bound(elements), decodeRatioToBound: rkDecode / bound(elements),
                        encodeReadWriteBoundMs: readWriteBound(elements, 4 * coefficients.count) * 1e3))
        }

        // ATOMO needs a full SVD per matrix; it is measured on one ResNet-18 layer (conv 256→256 3×3).
        let layer = Philox(seed: 2).normalTensor(shape: [256, 256, 3, 3], standardDeviation: 1e-3)
        try measure(ATOMO(budget: 4), on: layer)

        let loadAtEnd = MachineDescription.loadAverage()
        // The peer runs after ours, alone on the cores; its lines read `name: 12.3 ms ...`.
        if let output = try peer.output(script: "peer_compressors.py") {
            for i in rows.indices {
                guard let names = rows[i].peerNames else { continue }
                rows[i].peerEncodeMs = PeerArguments.figure(in: output, line: names.encode + ":", unit: "ms")
                rows[i].peerDecodeMs = names.decode.flatMap { PeerArguments.figure(in: output, line: $0 + ":", unit: "ms") }
                rows[i].encodeRatioToPeer = rows[i].peerEncodeMs.map { rows[i].encodeMs / $0 }
                rows[i].decodeRatioToPeer = rows[i].peerDecodeMs.map { rows[i].decodeMs / $0 }
            }
        }
        let report = Report(elements: elements, threads: 1, copyBandwidthGBs: copyAtStart, oneReadBoundMs: Double(4 * elements) / (copyAtStart * 1e9) * 1e3,
                            loadAverageAtStart: loadAtStart, loadAverageAtEnd: loadAtEnd, methods: rows,
                            notes: "times are medians of \(repeats) runs on one thread; the bound is 4·n bytes at the copy "
                                 + "bandwidth (read + write bytes per second of a 64 MB copy, measured right before each row; "
                                 + "the report's copyBandwidthGBs and oneReadBoundMs are the first measurement), the "
                                 + "read-write bound 4·n + message bytes at that bandwidth; decode "
                                 + "adds into a float buffer; peer (with --peer) = PyTorch GRACE-style, 1 thread, run after ours; "
                                 + "ATOMO is timed on one 256×2304 layer, not on the whole gradient")
        try BenchmarkReport.print(report)
    }
}
