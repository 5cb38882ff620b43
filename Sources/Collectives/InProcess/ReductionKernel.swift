/// The element-wise reduction of one chunk of every rank's buffer, in rank order 0 ..< W, with
/// the result written back into that chunk of *every* rank's buffer.
///
/// This is the whole in-process all-reduce for one owner: rank r reads chunk r of the W buffers
/// and writes the reduced chunk into all W of them. No other rank reads or writes chunk r during
/// the collective, so no scratch buffer, no second phase and no barrier between phases is needed,
/// and the memory traffic is the minimum: W reads and W writes of the chunk (at W = 2 and 44.7 MB,
/// 4 × 22.3 MB per worker). The lines written were just read, so the stores cost no extra
/// read-for-ownership.
///
/// Order: each element is ((b₀ ⊕ b₁) ⊕ b₂) ⊕ … ⊕ b_{W−1}, then × (1/W) for `.mean`, computed in
/// 16-lane SIMD registers (lane-wise IEEE operations: the same bits as the scalar loop of the
/// tail), so results are bit-identical run to run, on every rank, and independent of which thread
/// owns the chunk.
enum ReductionKernel {
    typealias Lanes = SIMD16<Float>

    /// Reduces `buffers[k][range]` over k (in order k = 0, 1, …) and stores the result into
    /// `buffers[k][range]` for every k. `buffers` are base addresses of the ranks' buffers (all at
    /// least `range.upperBound` long).
    static func reduceIntoAll(_ buffers: UnsafeBufferPointer<UnsafeMutablePointer<Float>>,
                              range: Range<Int>, operation: ReduceOperation) {
        guard !range.isEmpty, !buffers.isEmpty else { return }
        switch operation {
        case .sum: reduceIntoAll(buffers, range: range, rule: SumRule.self, scale: nil)
        case .mean: reduceIntoAll(buffers, range: range, rule: SumRule.self, scale: 1 / Float(buffers.count))
        case .max: reduceIntoAll(buffers, range: range, rule: MaxRule.self, scale: nil)
        }
    }

    @inline(__always)
    static func reduceIntoAll<Rule: CombineRule>(_ buffers: UnsafeBufferPointer<UnsafeMutablePointer<Float>>,
                                                 range: Range<Int>, rule: Rule.Type, scale: Float?) {
        let w = buffers.count
        var i = range.lowerBound
        let vectorEnd = range.lowerBound &+ (range.count / Lanes.scalarCount) &* Lanes.scalarCount
        if w == 2 {
            // The common case, with both streams in registers and no inner loop over ranks.
            let p0 = UnsafeMutableRawPointer(buffers[0]), p1 = UnsafeMutableRawPointer(buffers[1])
            while i < vectorEnd {
                let offset = i &* 4
                var s = Rule.combine(p0.loadUnaligned(fromByteOffset: offset, as: Lanes.self),
                                     p1.loadUnaligned(fromByteOffset: offset, as: Lanes.self))
                if let scale { s *= scale }
                p0.storeBytes(of: s, toByteOffset: offset, as: Lanes.self)
                p1.storeBytes(of: s, toByteOffset: offset, as: Lanes.self)
                i &+= Lanes.scalarCount
            }
        } else {
            while i < vectorEnd {
                let offset = i &* 4
                var s = UnsafeMutableRawPointer(buffers[0]).loadUnaligned(fromByteOffset: offset, as: Lanes.self)
                for k in 1 ..< w {
                    s = Rule.combine(s, UnsafeMutableRawPointer(buffers[k]).loadUnaligned(fromByteOffset: offset, as: Lanes.self))
                }
                if let scale { s *= scale }
                for k in 0 ..< w {
                    UnsafeMutableRawPointer(buffers[k]).storeBytes(of: s, toByteOffset: offset, as: Lanes.self)
                }
                i &+= Lanes.scalarCount
            }
        }
        while i < range.upperBound {
            var s = buffers[0][i]
            for k in 1 ..< w { s = Rule.combine(s, buffers[k][i]) }
            if let scale { s *= scale }
            for k in 0 ..< w { buffers[k][i] = s }
            i &+= 1
        }
    }
}

/// The binary operation of a reduction, on one value and on 16 lanes (the same IEEE result per lane).
protocol CombineRule {
    static func combine(_ a: Float, _ b: Float) -> Float
    static func combine(_ a: ReductionKernel.Lanes, _ b: ReductionKernel.Lanes) -> ReductionKernel.Lanes
}

/// a + b.
enum SumRule: CombineRule {
    @inline(__always) static func combine(_ a: Float, _ b: Float) -> Float { a + b }
    @inline(__always) static func combine(_ a: ReductionKernel.Lanes, _ b: ReductionKernel.Lanes) -> ReductionKernel.Lanes { a + b }
}

/// b > a ? b : a (so a NaN in a later rank is dropped, a NaN already accumulated is kept).
enum MaxRule: CombineRule {
    @inline(__always) static func combine(_ a: Float, _ b: Float) -> Float { b > a ? b : a }
    @inline(__always) static func combine(_ a: ReductionKernel.Lanes, _ b: ReductionKernel.Lanes) -> ReductionKernel.Lanes {
        a.replacing(with: b, where: b .> a)
    }
}

extension ReductionKernel {
    /// Elements per staging block of the half-width reduction (4 KB of fp32: stays in L1).
    static let halfBlockElements = 1024

    /// The half-width all-reduce of one owner's chunk: every element is widened to fp32 (exact),
    /// combined over ranks in order 0, 1, …, W−1 in fp32, scaled by 1/W for `.mean`, and rounded
    /// **once** to `format` (RNE); the 16-bit result is stored into `buffers[k][range]` for every k.
    /// Same ownership argument as `reduceIntoAll`: no other rank touches this chunk.
    static func reduceHalfIntoAll(_ buffers: UnsafeBufferPointer<UnsafeMutablePointer<UInt16>>, range: Range<Int>,
                                  format: HalfWidthFormat, operation: ReduceOperation) {
        guard !range.isEmpty, !buffers.isEmpty else { return }
        let scale: Float? = operation == .mean ? 1 / Float(buffers.count) : nil
        // Blocks of `halfBlockElements` stay in L1: widen rank 0's patterns, combine each other
        // rank's (a sum adds them with the format's `add`, weight 1, exact; a max widens them into
        // a second block first), scale, round once back into rank 0's buffer, copy to the others.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * halfBlockElements) { blocks in
            var start = range.lowerBound
            while start < range.upperBound {
                let n = Swift.min(halfBlockElements, range.upperBound &- start)
                let staged = UnsafeMutableBufferPointer(rebasing: blocks[0 ..< n])
                format.widen(buffers[0] + start, into: staged)
                for k in 1 ..< buffers.count {
                    if operation == .max {
                        let other = UnsafeMutableBufferPointer(rebasing: blocks[halfBlockElements ..< halfBlockElements &+ n])
                        format.widen(buffers[k] + start, into: other)
                        for j in 0 ..< n { staged[j] = MaxRule.combine(staged[j], other[j]) }
                    } else {
                        format.add(buffers[k] + start, weight: 1, into: staged)
                    }
                }
                if let scale { for j in 0 ..< n { staged[j] *= scale } }
                let target = buffers[0] + start
                _ = format.narrow(UnsafeBufferPointer(staged), into: target)
                for k in 1 ..< buffers.count { (buffers[k] + start).update(from: target, count: n) }
                start &+= n
            }
        }
    }
}
