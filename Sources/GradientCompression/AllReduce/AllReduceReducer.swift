import Collectives
import LinearAlgebra

/// A compressor whose message is linear in the input and expressed on a representation every
/// worker shares, so messages can be summed by all-reduce instead of all-gathered
/// (ALGORITHMS.md §0): Random-K with indices drawn from a shared seed, and fp16 / bf16
/// (`HalfPrecisionCompressor`, coefficients = the values rounded to 16 bits).
public protocol LinearCompressor: Sendable {
    var name: String { get }
    /// The number of coefficients sent for a tensor of `shape`.
    func coefficientCount(shape: [Int]) -> Int
    /// How coefficients travel: `nil` = fp32 (4 bytes each); `.float16` / `.bfloat16` = 2 bytes
    /// each, through the communicator's half-width all-reduce. For a 16-bit format, `encode` must
    /// write values exactly representable in it (so packing them into 16 bits loses nothing).
    var coefficientFormat: HalfWidthFormat? { get }
    /// Writes the coefficients of `values`. `key.rank` is ignored: the representation is shared.
    func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey,
                into coefficients: UnsafeMutableBufferPointer<Float>) throws
    /// Overwrites `output` with the tensor the (averaged) coefficients stand for.
    func decode(_ coefficients: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey,
                into output: UnsafeMutableBufferPointer<Float>)
    /// True when the coefficients are the values themselves rounded to `coefficientFormat`
    /// (fp16 / bf16), and decoding is a copy: the reducer then rounds the gradients straight into
    /// 16-bit patterns and widens the average straight back into them (3 passes over memory
    /// instead of ~9; the same bits).
    var coefficientsAreRoundedValues: Bool { get }
}

extension LinearCompressor {
    public var coefficientFormat: HalfWidthFormat? { nil }
    public var coefficientsAreRoundedValues: Bool { false }
}

/// The reducer of linear compressors: encode, one all-reduce (mean) of every tensor's
/// coefficients in a single buffer, decode. Traffic does not grow with the group: each worker
/// sends and receives 2(W−1)/W of the packed coefficients (4 or 2 bytes each).
///
/// With a 16-bit `coefficientFormat` the packed fp16/bf16 patterns are all-reduced with
/// `.mean`: in-process, each average is accumulated in fp32 in rank order, × 1/W, and rounded
/// once to the format (RNE); over MPI each pairwise combine rounds (docs/collectives.md).
public struct AllReduceReducer<L: LinearCompressor>: CompressedAveraging {
    public let compressor: L
    public private(set) var step = 0
    var layout = GradientLayout()

    public init(_ compressor: L) { self.compressor = compressor }

    public var name: String { compressor.name }

    public mutating func reduce(_ gradients: inout [Tensor], over group: any Communicator) throws -> ReductionStats {
        let stats = try reduce(&gradients, tensors: gradients.indices, of: gradients.map(\.shape), over: group)
        finishStep()
        return stats
    }

    public var bucketSupport: BucketSupport { .exact }

    public mutating func reduce(_ bucket: inout [Tensor], tensors: Range<Int>, of shapes: [[Int]],
                                over group: any Communicator) throws -> ReductionStats {
        let meter = ReductionMeter(group)
        try layout.check(shapes: shapes)
        try BucketCheck.validate(bucket, tensors: tensors, of: shapes)
        if compressor.coefficientsAreRoundedValues, let format = compressor.coefficientFormat {
            try allReduceRoundedInPlace(&bucket, firstTensor: tensors.lowerBound, format: format, over: group)
        } else {
            bucket = try exchange(bucket, firstTensor: tensors.lowerBound, step: step, over: group, wantLocal: false).average
        }
        return meter.finish(uncompressedBytes: 4 * GradientLayout.elementCount(bucket))
    }

    public mutating func finishStep() { step += 1 }

    public func exchange(_ values: [Tensor], firstTensor: Int, step: Int, over group: any Communicator,
                         wantLocal: Bool) throws -> CompressedExchange {
        let counts = values.map { compressor.coefficientCount(shape: $0.shape) }
        var offsets = [0]
        for c in counts { offsets.append(offsets.last! + c) }
        var coefficients = [Float](repeating: 0, count: offsets.last!)
        var local: [Tensor]? = wantLocal ? values.map { Tensor(shape: $0.shape) } : nil
        try coefficients.withUnsafeMutableBufferPointer { all in
            for (i, v) in values.enumerated() {
                let slice = UnsafeMutableBufferPointer(rebasing: all[offsets[i] ..< offsets[i + 1]])
                let key = CompressionKey(rank: 0, step: step, tensor: firstTensor + i)
                try v.withUnsafeBufferPointer { try compressor.encode($0, shape: v.shape, key: key, into: slice) }
                if local != nil {
                    local![i].withUnsafeMutableBufferPointer {
                        compressor.decode(UnsafeBufferPointer(slice), shape: v.shape, key: key, into: $0)
                    }
                }
            }
        }
        if let format = compressor.coefficientFormat {
            try Self.allReduceMean(&coefficients, format: format, over: group)
        } else {
            try group.allReduce(&coefficients, operation: .mean)
        }
        var average = values.map { Tensor(shape: $0.shape) }
        coefficients.withUnsafeBufferPointer { all in
            for i in values.indices {
                let slice = UnsafeBufferPointer(rebasing: all[offsets[i] ..< offsets[i + 1]])
                average[i].withUnsafeMutableBufferPointer {
                    compressor.decode(slice, shape: values[i].shape, key: CompressionKey(rank: 0, step: step, tensor: firstTensor + i),
                                      into: $0)
                }
            }
        }
        return CompressedExchange(average: average, local: local)
    }

    /// The mean of the gradients rounded to `format`, in place: each tensor is rounded into its
    /// slice of one 16-bit buffer, the buffer is all-reduced, and the average is widened back.
    /// Bit-identical to `exchange`'s path (rounding a value twice gives the same pattern).
    func allReduceRoundedInPlace(_ gradients: inout [Tensor], firstTensor: Int, format: HalfWidthFormat,
                                 over group: any Communicator) throws {
        let n = GradientLayout.elementCount(gradients)
        var bits = [UInt16](unsafeUninitializedCapacity: n) { _, count in count = n }
        var offset = 0
        try bits.withUnsafeMutableBufferPointer { all in
            for (i, g) in gradients.enumerated() where g.count > 0 {
                let finite = g.withUnsafeBufferPointer { format.narrow($0, into: all.baseAddress! + offset) }
                if !finite {
                    // The compressor's own encode names what is wrong (NaN/Inf, fp16 overflow) and throws.
                    var scratch = [Float](repeating: 0, count: g.count)
                    try g.withUnsafeBufferPointer { v in
                        try scratch.withUnsafeMutableBufferPointer {
                            try compressor.encode(v, shape: g.shape, key: CompressionKey(rank: 0, step: step, tensor: firstTensor + i),
                                                      into: $0)
                        }
                    }
                }
                offset += g.count
            }
        }
        try group.allReduce(&bits, format: format, operation: .mean)
        offset = 0
        bits.withUnsafeBufferPointer { all in
            for i in gradients.indices where gradients[i].count > 0 {
                let count = gradients[i].count
                gradients[i].withUnsafeMutableBufferPointer { format.widen(all.baseAddress! + offset, into: $0) }
                offset += count
            }
        }
    }

    /// Packs the coefficients (exactly representable in `format`) into 16-bit patterns,
    /// all-reduces them (mean) and widens the result back to fp32 (exact).
    static func allReduceMean(_ coefficients: inout [Float], format: HalfWidthFormat, over group: any Communicator) throws {
        let n = coefficients.count
        var bits = [UInt16](unsafeUninitializedCapacity: n) { buffer, count in
            if n > 0 { _ = coefficients.withUnsafeBufferPointer { format.narrow($0, into: buffer.baseAddress!) } }
            count = n
        }
        try group.allReduce(&bits, format: format, operation: .mean)
        guard n > 0 else { return }
        bits.withUnsafeBufferPointer { b in coefficients.withUnsafeMutableBufferPointer { format.widen(b.baseAddress!, into: $0) } }
    }

    public func saveState(to archive: inout StateWriter) {
        archive.write("allreduce:\(name)")
        archive.write(step)
        layout.save(to: &archive)
    }

    public mutating func restoreState(from archive: inout StateReader) throws {
        try archive.expect("allreduce:\(name)")
        step = try archive.readInt()
        try layout.restore(from: &archive)
    }
}
