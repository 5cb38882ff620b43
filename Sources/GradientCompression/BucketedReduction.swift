import Collectives
import LinearAlgebra

/// Whether a reducer can reduce the model's gradients bucket by bucket (`--overlap`) with the
/// same result as one `reduce` of the whole list.
public enum BucketSupport: Sendable, Equatable {
    /// `reduce(_:tensors:of:over:)` over any partition of the list, then `finishStep()`, gives
    /// what `reduce(_:over:)` gives: every per-tensor computation is independent of the others,
    /// and the state is kept per tensor index of the full list.
    case exact
    /// The method needs the whole list at once; the text says why.
    case unsupported(reason: String)
}

/// Bucketed reduction: the capability behind overlapping communication with the backward pass
/// (PyTorch DDP's gradient buckets, Li et al., "PyTorch Distributed", VLDB 2020; Horovod's
/// tensor fusion).
///
/// A training step calls `reduce(_:tensors:of:over:)` once per bucket — each a range of
/// consecutive tensor indices of the model's full list, every index exactly once per step, in
/// an order every worker shares — and then `finishStep()`. A reducer that supports it keys all
/// its per-tensor state (error memories, warm-start factors, momentum, the randomness of
/// `CompressionKey(tensor:)`) by the tensor's index in the full list, never by bucket, so a
/// different bucket layout (a resume with another `--bucket-mb`) continues the same state; and
/// its step counter advances in `finishStep`, once per training step. (PyTorch's PowerSGD hook
/// keys its state by DDP bucket index instead, so there a new bucket layout scrambles it.)
/// `reduce(_:over:)` of a supporting reducer is one bucket of every tensor and `finishStep()`.
extension GradientReducer {
    /// `.unsupported` unless the reducer says otherwise.
    public var bucketSupport: BucketSupport {
        .unsupported(reason: "\(name) has no bucketed reduction (it reduces the whole gradient list at once)")
    }

    /// Throws `GradientCompressionError.bucketingUnsupported` unless the reducer implements it.
    public mutating func reduce(_ bucket: inout [Tensor], tensors: Range<Int>, of shapes: [[Int]],
                                over group: any Communicator) throws -> ReductionStats {
        guard case let .unsupported(reason) = bucketSupport else {
            throw GradientCompressionError.bucketingUnsupported(reducer: name, reason: "it declares bucket support but implements no bucketed reduce")
        }
        throw GradientCompressionError.bucketingUnsupported(reducer: name, reason: reason)
    }

    public mutating func finishStep() {}
}

/// The checks every bucketed reduce makes before touching its state.
public enum BucketCheck {
    /// Throws unless `bucket` holds the tensors `tensors` of the list `shapes` describes, with
    /// those shapes.
    public static func validate(_ bucket: [Tensor], tensors: Range<Int>, of shapes: [[Int]]) throws {
        guard tensors.lowerBound >= 0, tensors.upperBound <= shapes.count else {
            throw GradientCompressionError.tensorCountMismatch(expected: shapes.count, found: tensors.upperBound)
        }
        guard bucket.count == tensors.count else {
            throw GradientCompressionError.tensorCountMismatch(expected: tensors.count, found: bucket.count)
        }
        for (offset, tensor) in bucket.enumerated() where tensor.shape != shapes[tensors.lowerBound + offset] {
            throw GradientCompressionError.shapeMismatch(tensor: tensors.lowerBound + offset,
                                                         expected: shapes[tensors.lowerBound + offset], found: tensor.shape)
        }
    }

    /// Placeholder tensors (no elements) for the list of `count` tensors with `bucket` at `tensors`:
    /// lets a per-tensor loop index the full list by the global tensor index.
    static func embed(_ bucket: inout [Tensor], at tensors: Range<Int>, count: Int) -> [Tensor] {
        var full = [Tensor](repeating: Tensor(shape: [0]), count: count)
        for k in bucket.indices { swap(&full[tensors.lowerBound + k], &bucket[k]) }
        return full
    }

    /// The inverse of `embed`: moves the bucket's tensors back out of the full list.
    static func extract(_ full: inout [Tensor], at tensors: Range<Int>, into bucket: inout [Tensor]) {
        for k in bucket.indices { swap(&full[tensors.lowerBound + k], &bucket[k]) }
    }
}

extension ReductionStats {
    /// The statistics of a step reduced in buckets: sums of bytes and seconds, the collectives in
    /// call order. The relative error is kept only for a single bucket: it is a ratio of norms
    /// over the tensors it covers, and the parts' norms are not in the statistics.
    public static func combining(_ parts: [ReductionStats]) -> ReductionStats {
        guard parts.count != 1 else { return parts[0] }
        var total = ReductionStats()
        for part in parts {
            total.payloadBytes += part.payloadBytes
            total.bytesSent += part.bytesSent
            total.bytesReceived += part.bytesReceived
            total.uncompressedBytes += part.uncompressedBytes
            total.computeSeconds += part.computeSeconds
            total.communicationSeconds += part.communicationSeconds
            total.collectives += part.collectives
        }
        return total
    }
}
