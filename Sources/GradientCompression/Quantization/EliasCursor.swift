/// The read state of one QSGD Elias stream (stream k holds buckets k, k + 2, ...): its bit
/// position, the tensor index of its last nonzero, how many elements of that one's bucket follow
/// it, and the bucket's decoded unit. A gap within the bucket is two additions; crossing into a
/// later bucket of the stream (once per bucket) is out of line.
struct EliasCursor {
    struct Layout {
        let n: Int, bucketSize: Int, buckets: Int
        /// (unit, undo) per bucket: a level ζ decodes to (unit·ζ)·undo (see `QSGD`).
        let units: UnsafePointer<Float>
    }

    var p = 0
    var index: Int
    var remaining: Int
    var unit: Float
    var undo: Float
    var bucket: Int
    let stream: Int

    /// Before the first element of bucket k (`remaining` = its elements; 0 if it does not exist).
    init(stream k: Int, _ layout: Layout) {
        stream = k
        bucket = k
        index = k &* layout.bucketSize &- 1
        remaining = k < layout.buckets ? Swift.min(layout.bucketSize, layout.n &- k &* layout.bucketSize) : 0
        unit = k < layout.buckets ? layout.units[2 &* k] : 0
        undo = k < layout.buckets ? layout.units[2 &* k &+ 1] : 1
    }

    /// Reads γ(gap), the sign and γ(level) of the next nonzero and adds its value to `out`.
    ///
    /// One 64-bit window serves all three fields when they fit (they do unless a code is longer
    /// than ~25 bits): a single load on the bit-position chain instead of three. Error messages
    /// are built only when thrown.
    @inline(__always)
    mutating func decodeNonzero(_ source: BitSource, maxLevel: UInt64, narrow: Bool, _ layout: Layout,
                                into out: UnsafeMutablePointer<Float>) throws {
        let w = source.window(at: p)
        let z1 = w.bits.trailingZeroBitCount, length1 = 2 &* z1 &+ 1
        let afterSign = w.bits &>> UInt64(truncatingIfNeeded: length1 &+ 1)
        let z2 = afterSign.trailingZeroBitCount, total = length1 &+ 2 &+ 2 &* z2
        var gap: UInt64, level: UInt64, negative: UInt32
        if total <= w.valid {
            // Every shift below is < 64: total ≤ 64 implies z1, z2 ≤ 31.
            gap = (w.bits &>> UInt64(truncatingIfNeeded: z1 &+ 1)) & ((1 &<< UInt64(truncatingIfNeeded: z1)) &- 1)
                | 1 &<< UInt64(truncatingIfNeeded: z1)
            negative = UInt32(truncatingIfNeeded: w.bits &>> UInt64(truncatingIfNeeded: length1)) & 1
            level = (afterSign &>> UInt64(truncatingIfNeeded: z2 &+ 1)) & ((1 &<< UInt64(truncatingIfNeeded: z2)) &- 1)
                | 1 &<< UInt64(truncatingIfNeeded: z2)
            p &+= total
        } else {
            (gap, level, negative) = try readLongNonzero(source)
        }
        guard level <= maxLevel else { throw levelError(level, maxLevel) }
        if gap <= UInt64(truncatingIfNeeded: remaining) {
            index &+= Int(truncatingIfNeeded: gap)
            remaining &-= Int(truncatingIfNeeded: gap)
        } else {
            try crossBuckets(gap, layout)
        }
        let magnitude = unit * (narrow ? Float(bitPattern: 0x4B00_0000 | UInt32(truncatingIfNeeded: level)) - 0x1p23 : QSGD.exactFloat(level)) * undo
        // The sign bit xor-ed in: `negative ? -m : m` compiled to a branch that random signs mispredict half the time.
        out[index] += Float(bitPattern: magnitude.bitPattern ^ negative &<< 31)
    }

    /// Out of line, like every cold path here: inlined, the message building and the long reads
    /// took registers from the hot loop, whose state then lived on the stack.
    @inline(never)
    func levelError(_ level: UInt64, _ maxLevel: UInt64) -> GradientCompressionError {
        .corruptMessage("QSGD stream \(stream): level \(level) > s = \(maxLevel) after element \(index)")
    }

    /// A gap that leaves the current bucket: walks to the stream's bucket that holds it.
    @inline(never)
    mutating func crossBuckets(_ gap: UInt64, _ layout: Layout) throws {
        var left = gap &- UInt64(remaining)  // ≥ 1: elements past the current bucket's end
        while true {
            bucket &+= 2
            guard bucket < layout.buckets else {
                throw GradientCompressionError.corruptMessage("QSGD stream \(stream): a gap of \(gap) after element \(index) lies beyond the tensor")
            }
            let count = UInt64(Swift.min(layout.bucketSize, layout.n &- bucket &* layout.bucketSize))
            if left <= count {
                index = bucket &* layout.bucketSize &- 1 &+ Int(left)
                remaining = Int(count &- left)
                unit = layout.units[2 &* bucket]
                undo = layout.units[2 &* bucket &+ 1]
                return
            }
            left &-= count
        }
    }

    /// The fields one by one, for codes longer than a window and near the end of the stream.
    @inline(never)
    mutating func readLongNonzero(_ source: BitSource) throws -> (gap: UInt64, level: UInt64, negative: UInt32) {
        let (gap, gapBits) = try source.gamma(at: p, "the gap after element \(index) in stream \(stream)")
        p &+= gapBits
        let negative = UInt32(truncatingIfNeeded: try source.field(1, at: p, "a sign in stream \(stream)"))
        let (level, levelBits) = try source.gamma(at: p &+ 1, "a level in stream \(stream)")
        p &+= 1 &+ levelBits
        return (gap, level, negative)
    }
}
