import Collectives
import LinearAlgebra

/// Plain data-parallel SGD: every gradient packed into one buffer and all-reduced (mean) in
/// fp32. The baseline every compressed method is measured against: exact, and 4 bytes per
/// parameter per worker per step.
public struct UncompressedReducer: GradientReducer {
    public var name: String { "sgd" }
    private var packed: [Float] = []

    public init() {}

    public mutating func reduce(_ gradients: inout [Tensor], over group: any Communicator) throws -> ReductionStats {
        let meter = ReductionMeter(group)
        let total = gradients.reduce(0) { $0 + $1.count }
        if packed.count != total { packed = [Float](repeating: 0, count: total) }
        try packed.withUnsafeMutableBufferPointer { buffer in
            var offset = 0
            for tensor in gradients {
                tensor.withUnsafeBufferPointer { source in
                    if let base = source.baseAddress { (buffer.baseAddress! + offset).update(from: base, count: source.count) }
                }
                offset += tensor.count
            }
            try group.allReduce(buffer, operation: .mean)
            offset = 0
            for index in gradients.indices {
                gradients[index].withUnsafeMutableBufferPointer { target in
                    if let base = target.baseAddress { base.update(from: buffer.baseAddress! + offset, count: target.count) }
                }
                offset += gradients[index].count
            }
        }
        return meter.finish(uncompressedBytes: 4 * total, relativeError: 0)
    }

    public func saveState(to archive: inout StateWriter) { archive.write("sgd") }
    public mutating func restoreState(from archive: inout StateReader) throws { try archive.expect("sgd") }
}

extension UncompressedReducer {
    static let catalogEntry = ReducerCatalog.Entry(
        name: "sgd", summary: "uncompressed fp32 all-reduce (the baseline)", options: []) { _, _ in UncompressedReducer() }
}
