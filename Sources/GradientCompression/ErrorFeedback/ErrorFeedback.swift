import Collectives
import LinearAlgebra

/// Error feedback around any compressed exchange (`AllGatherReducer`, `AllReduceReducer`).
///
/// `.classic` (EF14; ALGORITHMS.md §0.1, convention A: memory in gradient units, the learning
/// rate applied by the optimizer after the reduction):
/// ```
/// p_w = g_w + e_w;   ĝ = mean_w D(C(p_w));   e_w ← p_w − D(C(p_w))
/// ```
/// `.ef21` (Richtárik et al. 2021; §9): each worker keeps an estimate h_w of its gradient and
/// every worker a copy of H = mean_w h_w; a step sends c_w = C(g_w − h_w), then
/// h_w ← h_w + D(c_w), H ← H + mean_w D(c_w), and the output is H. The first call sends the exact
/// gradients (one fp32 all-reduce; h_w = g_w, H = their mean), as the authors' code does. H is
/// updated identically on every worker (the same decoded bytes, the same order), so it stays
/// bit-identical across workers; `resynchronizeEvery` > 0 additionally recomputes H as the exact
/// all-reduced mean of the h_w every that many steps, removing drift of H from mean h_w
/// (§9's pitfall) at the cost of one fp32 all-reduce.
public struct ErrorFeedback<Inner: CompressedAveraging>: GradientReducer {
    public enum Mode: String, Sendable { case classic = "ef", ef21 }

    public private(set) var inner: Inner
    public let mode: Mode
    public let resynchronizeEvery: Int
    public private(set) var step = 0
    /// `.classic`: the residuals e_w. `.ef21`: the worker's estimates h_w.
    var memory: [Tensor] = []
    /// `.ef21`: H, the group's estimate.
    var estimate: [Tensor] = []
    var layout = GradientLayout()
    /// `.ef21`, during its first step: the exact gradients are sent (h_w = g_w, H = their mean).
    var sendsExactGradients = false

    public init(_ inner: Inner, mode: Mode = .classic, resynchronizeEvery: Int = 0) throws {
        guard resynchronizeEvery >= 0 else {
            throw GradientCompressionError.invalidOption("ef21: resync=\(resynchronizeEvery) must be 0 (never) or positive")
        }
        self.inner = inner
        self.mode = mode
        self.resynchronizeEvery = resynchronizeEvery
    }

    /// The inner reducer's name with `feedback=ef` or `feedback=ef21` (`resync=N` when set), as the
    /// catalog's `feedback` option writes it.
    public var name: String {
        let named = ReducerSpecification.reducerName(inner.name, setting: "feedback", to: mode.rawValue)
        return resynchronizeEvery > 0 ? ReducerSpecification.reducerName(named, setting: "resync", to: "\(resynchronizeEvery)") : named
    }

    public mutating func reduce(_ gradients: inout [Tensor], over group: any Communicator) throws -> ReductionStats {
        let stats = try reduce(&gradients, tensors: gradients.indices, of: gradients.map(\.shape), over: group)
        finishStep()
        return stats
    }

    /// The inner exchange's: the memories are per tensor, indexed in the model's full list.
    public var bucketSupport: BucketSupport { inner.bucketSupport }

    public mutating func reduce(_ bucket: inout [Tensor], tensors: Range<Int>, of shapes: [[Int]],
                                over group: any Communicator) throws -> ReductionStats {
        if case let .unsupported(reason) = bucketSupport, tensors != shapes.indices {
            throw GradientCompressionError.bucketingUnsupported(reducer: name, reason: reason)
        }
        let meter = ReductionMeter(group)
        try layout.check(shapes: shapes)
        try BucketCheck.validate(bucket, tensors: tensors, of: shapes)
        let elements = GradientLayout.elementCount(bucket)
        let first = tensors.lowerBound
        if memory.isEmpty {
            memory = shapes.map { Tensor(shape: $0) }
            if mode == .ef21 {
                estimate = memory
                sendsExactGradients = true
            }
        }
        var relativeError: Double?
        switch mode {
        case .classic:
            var corrected = bucket
            for k in corrected.indices { add(memory[first + k], to: &corrected[k]) }
            let result = try inner.exchange(corrected, firstTensor: first, step: step, over: group, wantLocal: true)
            var residual = 0.0, total = 0.0
            for k in corrected.indices {
                memory[first + k] = corrected[k]
                subtract(result.local![k], from: &memory[first + k])
                residual += Double(memory[first + k].withUnsafeBufferPointer { Vector.sumOfSquares($0) })
                total += Double(corrected[k].withUnsafeBufferPointer { Vector.sumOfSquares($0) })
            }
            relativeError = total > 0 ? (residual / total).squareRoot() : 0
            bucket = result.average
        case .ef21:
            if sendsExactGradients {
                for k in bucket.indices { memory[first + k] = bucket[k] }
                estimate.replaceSubrange(tensors, with: try exactMean(bucket, over: group))
            } else {
                var difference = bucket
                for k in difference.indices { subtract(memory[first + k], from: &difference[k]) }
                let result = try inner.exchange(difference, firstTensor: first, step: step, over: group, wantLocal: true)
                for k in bucket.indices {
                    add(result.local![k], to: &memory[first + k])
                    add(result.average[k], to: &estimate[first + k])
                }
                if resynchronizeEvery > 0, (step + 1) % resynchronizeEvery == 0 {
                    estimate.replaceSubrange(tensors, with: try exactMean(Array(memory[tensors]), over: group))
                }
            }
            bucket = Array(estimate[tensors])
        }
        return meter.finish(uncompressedBytes: 4 * elements, relativeError: relativeError)
    }

    public mutating func finishStep() {
        step += 1
        sendsExactGradients = false
    }

    func exactMean(_ tensors: [Tensor], over group: any Communicator) throws -> [Tensor] {
        var flat = Flattening.concatenate(tensors)
        try flat.withUnsafeMutableBufferPointer { try group.allReduce($0, operation: .mean) }
        return Flattening.split(flat, like: tensors)
    }

    func add(_ x: Tensor, to y: inout Tensor) {
        x.withUnsafeBufferPointer { px in y.withUnsafeMutableBufferPointer { Vector.add(px, to: $0) } }
    }

    func subtract(_ x: Tensor, from y: inout Tensor) {
        x.withUnsafeBufferPointer { px in y.withUnsafeMutableBufferPointer { Vector.axpy(-1, px, $0) } }
    }

    public func saveState(to archive: inout StateWriter) {
        archive.write("error-feedback:\(name)")
        archive.write(step)
        layout.save(to: &archive)
        archive.write(memory.count)
        for t in memory { archive.write(t) }
        archive.write(estimate.count)
        for t in estimate { archive.write(t) }
        inner.saveState(to: &archive)
    }

    public mutating func restoreState(from archive: inout StateReader) throws {
        try archive.expect("error-feedback:\(name)")
        step = try archive.readInt()
        try layout.restore(from: &archive)
        func tensors() throws -> [Tensor] {
            let count = try archive.readInt()
            guard count == 0 || count == layout.shapes?.count else {
                throw StateArchiveError.unexpectedValue(expected: "error-feedback tensor count", offset: archive.offset)
            }
            return try (0..<count).map { i in
                let t = try archive.readTensor()
                guard t.shape == layout.shapes![i] else {
                    throw GradientCompressionError.shapeMismatch(tensor: i, expected: layout.shapes![i], found: t.shape)
                }
                return t
            }
        }
        memory = try tensors()
        estimate = try tensors()
        try inner.restoreState(from: &archive)
    }
}

extension ErrorFeedback {
    /// `reducer` with the error feedback a catalog `feedback` option names: `none`, `ef` or `ef21`.
    static func wrapping(_ reducer: Inner, _ choice: String) throws -> any GradientReducer {
        switch choice {
        case "ef": return try ErrorFeedback(reducer, mode: .classic)
        case "ef21": return try ErrorFeedback(reducer, mode: .ef21)
        default: return reducer
        }
    }
}
