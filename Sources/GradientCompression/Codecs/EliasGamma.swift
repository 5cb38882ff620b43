/// The Elias gamma code of positive integers (Elias 1975), the entropy code of QSGD's sparse
/// stream (ALGORITHMS.md §3.2).
///
/// Gamma rather than omega: QSGD's stream codes small numbers (levels ≤ s, and gaps that are
/// mostly 1–3 once a bucket is dense), where gamma is as short or shorter (both need 1 bit for
/// k = 1; gamma 3 bits for 2–3 against omega's 3, 5 for 4–7 against 6), and its decoder is one
/// count-trailing-zeros and one shift instead of a loop.
///
/// k ≥ 1 with L = ⌊log₂ k⌋ + 1 significant bits is written as L − 1 zero bits, a one bit, then
/// the low L − 1 bits of k: 2⌊log₂ k⌋ + 1 bits in all, the textbook length. Our bit writer is
/// least-significant-bit first, so the "leading" zeros come first in the stream and the decoder
/// counts trailing zeros of its window; the textbook writes the same fields most-significant first.
public enum EliasGamma {
    /// The code length of `value` in bits: 2⌊log₂ value⌋ + 1.
    @inlinable
    public static func length(of value: UInt64) -> Int {
        precondition(value >= 1, "Elias gamma codes positive integers only")
        return 2 &* (63 &- value.leadingZeroBitCount) &+ 1
    }

    /// Appends the code of `value` ≥ 1.
    @inlinable
    public static func write(_ value: UInt64, to writer: inout BitWriter) {
        let z = 63 &- value.leadingZeroBitCount  // ⌊log₂ value⌋
        if z <= 31 {
            // One field of 2z+1 bits: z zeros, the one at bit z, then value's low z bits above it.
            let low = value & ((1 << UInt64(z)) &- 1)
            writer.write((low << UInt64(z &+ 1)) | (1 << UInt64(z)), bits: 2 &* z &+ 1)
        } else {
            writer.write(0, bits: z)
            writer.write(1, bits: 1)
            writer.write(value & ((1 << UInt64(z)) &- 1), bits: z)
        }
    }

    /// Reads one code; throws on a run of more than 63 zeros or a stream that ends inside the code.
    @inlinable
    public static func read(from reader: inout BitReader, _ what: @autoclosure () -> String = "an Elias gamma code") throws -> UInt64 {
        if reader.available < 57 { reader.refill() }
        let w = reader.window
        if w != 0 {
            let z = w.trailingZeroBitCount
            let length = 2 &* z &+ 1
            if length <= reader.available {
                let low = (w >> UInt64(z &+ 1)) & ((1 << UInt64(z)) &- 1)
                reader.window = w >> UInt64(length)
                reader.available &-= length
                return low | (1 << UInt64(z))
            }
        }
        return try readSlow(from: &reader, what())
    }

    /// Codes longer than the window (values ≥ 2²⁸) and codes that hit the end of the buffer.
    @usableFromInline
    static func readSlow(from reader: inout BitReader, _ what: String) throws -> UInt64 {
        var zeros = 0
        while try !reader.readBit(what) {
            zeros += 1
            guard zeros <= 63 else {
                throw GradientCompressionError.corruptMessage(
                    "\(reader.context) message has more than 63 zero bits at bit \(reader.bitPosition) in \(what) (no 64-bit value)")
            }
        }
        return (1 << UInt64(zeros)) | (try reader.readWide(bits: zeros, what))
    }
}
