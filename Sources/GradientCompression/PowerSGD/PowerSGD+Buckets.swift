import Collectives
import LinearAlgebra

/// PowerSGD bucket by bucket (`--overlap`; BucketedReduction.swift).
///
/// Every per-tensor quantity of the power step — Q (warm start), the error memory E, the
/// pending residual (P̂', Q_c') — sits at the tensor's fixed offset in the packed buffers of the
/// whole list's `MatrixLayout`, and the shared randomness is keyed by (seed, step, tensor index).
/// A bucket runs the same power step (`powerStep`) on `MatrixLayout.restricted(to:)`: the
/// bucket's tensors, and the windows of P, Q and the uncompressed buffer that hold them, which
/// are all-reduced in the bucket's own 3 collectives. Each column of P, Q is orthonormalized and
/// reduced per tensor, so the buckets' results are the whole step's, element for element.
/// The two step-level flags (a warm start exists; a residual is pending) describe the previous
/// step for every bucket of a step, and the step counter advances in `finishStep`.
extension PowerSGD {
    public var bucketSupport: BucketSupport {
        if options.alternate {
            return .unsupported(reason: "alternate=true packs the whole model's factor and uncompressed tensors into its "
                                + "one all-reduce per step; buckets would make it one per bucket (not implemented)")
        }
        return options.groupSameShapes
            ? .unsupported(reason: "group-same-shapes=true packs the factors of same-shape matrices from the whole model "
                           + "into shared blocks, so a bucket's factors are not one contiguous window")
            : .exact
    }

    public mutating func reduce(_ bucket: inout [Tensor], tensors: Range<Int>, of shapes: [[Int]],
                                over group: any Communicator) throws -> ReductionStats {
        if case let .unsupported(reason) = bucketSupport {
            throw GradientCompressionError.bucketingUnsupported(reducer: name, reason: reason)
        }
        let meter = ReductionMeter(group)
        if layout == nil { layout = self.layout(for: shapes) }
        if !agreementChecked {
            try MatrixLayout.checkAgreement(shapes, over: group)
            agreementChecked = true
        }
        let whole = self.layout!
        if whole.shapes != shapes { try whole.validate(shapes.map { Tensor(shape: $0) }) }
        try BucketCheck.validate(bucket, tensors: tensors, of: shapes)
        makeWorkspaceUnique()
        workspace.fitState(to: whole, errorFeedback: options.errorFeedback != .off)
        if let start = bucketStepStart {
            hasWarmStart = start.hasWarmStart
            workspace.hasPendingResidual = start.hasPendingResidual
        } else {
            bucketStepStart = (hasWarmStart, workspace.hasPendingResidual)
        }
        let part = whole.restricted(to: tensors)
        let uncompressedBytes = 4 * GradientLayout.elementCount(bucket)
        var gradients = BucketCheck.embed(&bucket, at: tensors, count: shapes.count)
        defer { BucketCheck.extract(&gradients, at: tensors, into: &bucket) }
        if step < options.startIteration {
            try allReduceEverything(&gradients, layout: part, over: group)
            return meter.finish(uncompressedBytes: uncompressedBytes, relativeError: 0)
        }
        var none = IgnoringObserver()
        let relativeError = try powerStep(&gradients, layout: part, over: group, observer: &none)
        if options.warmStart { reviveZeroColumns(layout: part) }
        return meter.finish(uncompressedBytes: uncompressedBytes, relativeError: relativeError)
    }

    public mutating func finishStep() {
        step += 1
        bucketStepStart = nil
    }
}
