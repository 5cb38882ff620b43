/// The element-wise reduction of one chunk over every rank's buffer, in rank order 0 ..< W.
///
/// The chunk is processed in blocks of `blockElements` that stay in L1: the block is first
/// copied from rank 0, combined with ranks 1, 2, ... in that order, scaled for `.mean`, then
/// stored. The fixed left-to-right order ((b0 + b1) + b2) + ... makes the result bit-identical
/// run to run and independent of which thread computes it; staging in a block (instead of
/// accumulating in the destination) lets the destination be one of the sources.
enum ReductionKernel {
    static let blockElements = 2048

    /// Reduces `sources[k][range]` over k into `destination[range]`.
    /// `sources` are base addresses of the ranks' buffers (all at least `range.upperBound` long).
    static func reduce(sources: UnsafeBufferPointer<UnsafeMutablePointer<Float>>,
                              range: Range<Int>, into destination: UnsafeMutablePointer<Float>,
                              operation: ReduceOperation) {
        guard !range.isEmpty, let first = sources.first else { return }
        let scale = 1 / Float(sources.count)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: blockElements) { block in
            let staged = block.baseAddress!
            var start = range.lowerBound
            while start < range.upperBound {
                let n = Swift.min(blockElements, range.upperBound &- start)
                staged.update(from: first + start, count: n)
                for k in 1 ..< sources.count {
                    combine(staged, sources[k] + start, count: n, operation: operation)
                }
                if operation == .mean { scaleInPlace(staged, count: n, by: scale) }
                (destination + start).update(from: staged, count: n)
                start &+= n
            }
        }
    }

    @inline(__always)
    static func combine(_ accumulator: UnsafeMutablePointer<Float>, _ other: UnsafeMutablePointer<Float>,
                        count: Int, operation: ReduceOperation) {
        switch operation {
        case .sum, .mean:
            for i in 0 ..< count { accumulator[i] += other[i] }
        case .max:
            for i in 0 ..< count {
                let a = accumulator[i], b = other[i]
                accumulator[i] = b > a ? b : a
            }
        }
    }

    @inline(__always)
    static func scaleInPlace(_ values: UnsafeMutablePointer<Float>, count: Int, by factor: Float) {
        for i in 0 ..< count { values[i] *= factor }
    }
}
