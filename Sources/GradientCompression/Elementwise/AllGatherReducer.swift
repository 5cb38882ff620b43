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
        let meter = ReductionMeter(group)
        try layout.check(gradients)
        gradients = try exchange(gradients, step: step, over: group, wantLocal: false).average
        step += 1
        return meter.finish(uncompressedBytes: 4 * GradientLayout.elementCount(gradients))
    }

    public func exchange(_ values: [Tensor], step: Int, over group: any Communicator, wantLocal: Bool) throws -> CompressedExchange {
        let units = scope == .global ? [Flattening.concatenate(values)] : values
        var frame: [UInt8] = []
        for (i, unit) in units.enumerated() {
            let message = try compressor.encode(unit, key: CompressionKey(rank: group.rank, step: step, tensor: i))
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
                    if let fixed = compressor.fixedMessageBytes(shape: shape) { length = fixed } else {
                        length = Int(try reader.readUInt32("the length of tensor \(i)'s message"))
                    }
                    let message = try reader.take(length, "tensor \(i)'s message")
                    let key = CompressionKey(rank: rank, step: step, tensor: i)
                    do {
                        try average[i].withUnsafeMutableBufferPointer {
                            try compressor.decode(message, shape: shape, key: key, weight: weight, accumulatingInto: $0)
                        }
                    } catch let GradientCompressionError.corruptMessage(text) {
                        // Name the sender: the compressor's text knows only its own format.
                        throw GradientCompressionError.corruptMessage("\(name) frame from worker \(rank), tensor \(i): \(text)")
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
