/// A checked least-significant-bit-first reader of the fields `BitSink` and `BitWriter` write,
/// for the decoders' hot loops.
///
/// The caller keeps the bit position in a local variable and passes it by value (a mutating reader
/// with an out-of-line error path stayed in memory, and reloading it made the Elias decoder 3×
/// slower); every read loads the 8 bytes at the position's byte (when 8 remain)
/// and shifts out the bits already consumed, giving a window of at least 57 valid bits; near the end
/// of the message the window is assembled from the bytes that exist. A read longer than the bits
/// left throws `GradientCompressionError.corruptMessage`, so arbitrary bytes can never cause a read
/// out of bounds.
@usableFromInline
struct BitSource {
    @usableFromInline let base: UnsafeRawBufferPointer
    /// Names the message in error texts, e.g. "QSGD".
    @usableFromInline let context: StaticString

    @inlinable
    init(_ base: UnsafeRawBufferPointer, context: StaticString) {
        self.base = base
        self.context = context
    }

    /// The unread bits at bit `position` (lowest first) and how many of them are valid (0...64).
    @inlinable @inline(__always)
    func window(at position: Int) -> (bits: UInt64, valid: Int) {
        let byte = position &>> 3, skip = position & 7
        if byte &+ 8 <= base.count, let p = base.baseAddress {
            let word = UInt64(littleEndian: p.loadUnaligned(fromByteOffset: byte, as: UInt64.self))
            return (word &>> UInt64(skip), 64 &- skip)
        }
        return tailWindow(at: position)
    }

    @usableFromInline
    func tailWindow(at position: Int) -> (bits: UInt64, valid: Int) {
        let byte = position >> 3
        guard byte < base.count else { return (0, 0) }
        var word: UInt64 = 0
        for k in 0 ..< Swift.min(8, base.count - byte) { word |= UInt64(base[byte + k]) << UInt64(8 * k) }
        return (word >> UInt64(position & 7), 8 * Swift.min(8, base.count - byte) - (position & 7))
    }

    @usableFromInline
    func truncated(_ what: String, at position: Int) -> GradientCompressionError {
        .corruptMessage("\(context) message of \(base.count) bytes ends at bit \(position) while reading \(what)")
    }

    /// The field of `bits` bits (0 ≤ bits ≤ 56) at `position`; the caller advances by `bits`.
    @inlinable @inline(__always)
    func field(_ bits: Int, at position: Int, _ what: @autoclosure () -> String) throws -> UInt64 {
        let w = window(at: position)
        guard bits <= w.valid else { throw truncated(what(), at: position) }
        return w.bits & ((1 &<< UInt64(truncatingIfNeeded: bits)) &- 1)
    }

    /// The Elias gamma code (`EliasGamma`) at `position`: its value and its length in bits. Throws
    /// on a run of more than 63 zeros or a message that ends inside the code.
    @inlinable @inline(__always)
    func gamma(at position: Int, _ what: @autoclosure () -> String) throws -> (value: UInt64, bits: Int) {
        let w = window(at: position)
        let z = w.bits.trailingZeroBitCount  // 64 for an empty window: fails the test below
        let length = 2 &* z &+ 1
        if length <= w.valid {
            let low = (w.bits &>> UInt64(truncatingIfNeeded: z &+ 1)) & ((1 &<< UInt64(truncatingIfNeeded: z)) &- 1)
            return (low | (1 &<< UInt64(truncatingIfNeeded: z)), length)
        }
        return try longGamma(at: position, what())
    }

    /// Codes longer than one window (values ≥ 2²⁸) and codes cut by the end of the message.
    @usableFromInline
    func longGamma(at start: Int, _ what: String) throws -> (value: UInt64, bits: Int) {
        var position = start, zeros = 0
        while true {
            let w = window(at: position)
            guard w.valid > 0 else { throw truncated(what, at: position) }
            let z = Swift.min(w.bits.trailingZeroBitCount, w.valid)
            zeros += z
            position += z
            guard zeros <= 63 else {
                throw GradientCompressionError.corruptMessage(
                    "\(context) message has more than 63 zero bits at bit \(position) in \(what) (no 64-bit value)")
            }
            if z < w.valid { break }
        }
        position += 1  // the one
        var low: UInt64
        if zeros > 32 {
            low = try field(32, at: position, what)
            low |= try field(zeros - 32, at: position + 32, what) << 32
        } else {
            low = try field(zeros, at: position, what)
        }
        return ((1 << UInt64(zeros)) | low, position + zeros - start)
    }

    /// Throws unless every bit after `position` is zero padding of the last byte, so trailing
    /// garbage or a message cut at a byte boundary is reported rather than ignored.
    func expectEnd(at position: Int) throws {
        let rest = 8 * base.count - position
        guard rest < 8 else {
            throw GradientCompressionError.corruptMessage(
                "\(context) message has \(rest) unread bits (\(base.count) bytes) after the last field")
        }
        if rest > 0, try field(rest, at: position, "padding") != 0 {
            throw GradientCompressionError.corruptMessage("\(context) message has nonzero padding bits")
        }
    }
}
