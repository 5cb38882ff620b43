import Collectives
import LinearAlgebra

/// The generic reducer of element-wise compressors (QSGD, TernGrad, signs, Top-K, ATOMO, fp16 …):
/// encode, all-gather the bytes, decode every worker's message, average (ALGORITHMS.md §0).
///
/// Each worker's all-gather message is the concatenation of its per-tensor messages, in tensor
/// order. A message whose size the shape fixes is sent bare; a variable-size one (QSGD's Elias
/// stream, ATOMO) is preceded by its length as a 4-byte little-endian integer, checked against
/// the bytes that remain. Every worker decodes the same bytes in rank order, so the average is
/// bit-identical on every worker.
///
/// All-gather traffic grows with the group: each worker receives (W − 1) messages.
public struct AllGatherReducer<C: Compressor>: CompressedAveraging {
    /// Compress each tensor on its own, or the concatenation of all of them (global Top-K).
    public enum Scope: String, Sendable { case perTensor, global }

    public let compressor: C
    public let scope: Scope
    /// Steps reduced so far (keys the compressors' randomness).
    public private(set) var step = 0
    var layout = GradientLayout()

    public init(_ compressor: C, scope: Scope = .perTensor) {
        self.compressor = compressor
        self.scope = scope
    }

    public var name: String { scope == .global ? ReducerSpecification.reducerName(compressor.name, setting: "scope", to: "global") : compressor.name }

    public mutating func reduce(_ gradients: inout [Tensor], over group: any Communicator) throws -> ReductionStats {
        let stats = try reduce(&gradients, tensors: gradients.indices, of: gradients.map(\.shape), over: group)
        finishStep()
        return stats
    }

    public var bucketSupport: BucketSupport {
        scope == .global ? .unsupported(reason: "scope=global keeps the largest entries of the whole model's concatenated "
                                        + "gradient, which no bucket holds") : .exact
    }

    public mutating func reduce(_ bucket: inout [Tensor], tensors: Range<Int>, of shapes: [[Int]],
                                over group: any Communicator) throws -> ReductionStats {
        if case let .unsupported(reason) = bucketSupport, tensors != shapes.indices {
            throw GradientCompressionError.bucketingUnsupported(reducer: name, reason: reason)
        }
        let meter = ReductionMeter(group)
        try layout.check(shapes: shapes)
        try BucketCheck.validate(bucket, tensors: tensors, of: shapes)
        bucket = try exchange(bucket, firstTensor: tensors.lowerBound, step: step, over: group, wantLocal: false).average
        return meter.finish(uncompressedBytes: 4 * GradientLayout.elementCount(bucket))
    }

    public mutating func finishStep() { step += 1 }

    public func exchange(_ values: [Tensor], firstTensor: Int, step: Int, over group: any Communicator,
                         wantLocal: Bool) throws -> CompressedExchange {
        let units = scope == .global ? [Flattening.concatenate(values)] : values
        var frame: [UInt8] = []
        for (i, unit) in units.enumerated() {
            let message = try compressor.encode(unit, key: CompressionKey(rank: group.rank, step: step, tensor: firstTensor + i))
            if compressor.fixedMessageBytes(shape: unit.shape) == nil { frame.appendLittleEndian(UInt32(message.count)) }
            frame.append(contentsOf: message)
        }
        let frames = try group.allGather(frame)
        guard frames.count == group.size else {
            throw GradientCompressionError.corruptMessage("all-gather returned \(frames.count) messages for \(group.size) workers")
        }
        var average = units.map { Tensor(shape: $0.shape) }
        var local: [Tensor]? = wantLocal ? units.map { Tensor(shape: $0.shape) } : nil
        let weight = 1 / Float(group.size)
        for (rank, frame) in frames.enumerated() {
            try frame.withUnsafeBytes { bytes in
                var reader = ByteReader(bytes, context: "\(name) frame from worker \(rank)")
                for i in units.indices {
                    let shape = units[i].shape
                    let length: Int
                    let tensor = firstTensor + i
                    if let fixed = compressor.fixedMessageBytes(shape: shape) { length = fixed } else {
                        length = Int(try reader.readUInt32("the length of tensor \(tensor)'s message"))
                    }
                    let message = try reader.take(length, "tensor \(tensor)'s message")
                    let key = CompressionKey(rank: rank, step: step, tensor: tensor)
                    do {
                        try average[i].withUnsafeMutableBufferPointer {
                            try compressor.decode(message, shape: shape, key: key, weight: weight, accumulatingInto: $0)
                        }
                    } catch let GradientCompressionError.corruptMessage(text) {
                        // Name the sender: the compressor's text knows only its own format.
                        throw GradientCompressionError.corruptMessage("\(name) frame from worker \(rank), tensor \(tensor): \(text)")
                    }
                    if rank == group.rank, local != nil {
                        try local![i].withUnsafeMutableBufferPointer {
                            try compressor.decode(message, shape: shape, key: key, weight: 1, accumulatingInto: $0)
                        }
                    }
                }
                try reader.expectEnd()
            }
        }
        if scope == .global {
            return CompressedExchange(average: Flattening.split(average[0], like: values),
                                      local: local.map { Flattening.split($0[0], like: values) })
        }
        return CompressedExchange(average: average, local: local)
    }

    public func saveState(to archive: inout StateWriter) {
        archive.write("allgather:\(name)")
        archive.write(step)
        layout.save(to: &archive)
    }

    public mutating func restoreState(from archive: inout StateReader) throws {
        try archive.expect("allgather:\(name)")
        step = try archive.readInt()
        try layout.restore(from: &archive)
    }
}
