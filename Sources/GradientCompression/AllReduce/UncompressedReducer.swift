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
        try reduce(&gradients, tensors: gradients.indices, of: gradients.map(\.shape), over: group)
    }

    /// All-reduce is element-wise: a bucket's mean is the whole list's mean of those tensors.
    public var bucketSupport: BucketSupport { .exact }

    public mutating func reduce(_ bucket: inout [Tensor], tensors: Range<Int>, of shapes: [[Int]],
                                over group: any Communicator) throws -> ReductionStats {
        try BucketCheck.validate(bucket, tensors: tensors, of: shapes)
        let meter = ReductionMeter(group)
        let (placements, total) = TensorPlacement.contiguous(bucket)
        try TensorPlacement.allReduceMean(&bucket, placements, count: total, reusing: &packed, over: group)
        return meter.finish(uncompressedBytes: 4 * total, relativeError: 0)
    }

    public func saveState(to archive: inout StateWriter) { archive.write("sgd") }
    public mutating func restoreState(from archive: inout StateReader) throws { try archive.expect("sgd") }
}

extension UncompressedReducer {
    static let catalogEntry = ReducerCatalog.Entry(
        name: "sgd", summary: "uncompressed fp32 all-reduce (the baseline)", options: []) { _, _ in UncompressedReducer() }
}
