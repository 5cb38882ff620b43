/// Writes a stream of bit fields, least significant bit first.
///
/// Bit order: field bits are appended at increasing bit positions, and bit
/// position p lives in byte p/8 at bit p%8. A 64-bit accumulator collects
/// fields and is stored as one little-endian word when full, so a field costs
/// a shift, an or and (every 64 bits) one array append. `finish()` returns
/// exactly ⌈bitCount/8⌉ bytes; unused high bits of the last byte are zero.
public struct BitWriter {
    @usableFromInline var words: [UInt64] = []
    @usableFromInline var accumulator: UInt64 = 0
    /// Bits held in `accumulator`, always < 64.
    @usableFromInline var filled = 0

    /// A writer whose storage is reserved for about `expectedBits` bits.
    public init(expectedBits: Int = 0) {
        words.reserveCapacity(max(0, expectedBits) / 64 + 1)
    }

    /// The number of bits written so far.
    @inlinable public var bitCount: Int { words.count &* 64 &+ filled }

    /// Appends the low `bits` bits of `value` (0 ≤ bits ≤ 64; higher bits of `value` must be zero).
    @inlinable
    public mutating func write(_ value: UInt64, bits: Int) {
        guard bits > 0 else { return }
        accumulator |= value << UInt64(filled)
        let total = filled &+ bits
        if total >= 64 {
            words.append(accumulator)
            // The bits of `value` that did not fit; a shift by 64 (filled == 0) is 0 with Swift's smart shift.
            accumulator = value >> UInt64(64 &- filled)
            filled = total &- 64
        } else {
            filled = total
        }
    }

    /// Appends one bit.
    @inlinable
    public mutating func write(bit: Bool) { write(bit ? 1 : 0, bits: 1) }

    /// Overwrites the 32-bit field at bit offset 0 (a count that is known only at the end,
    /// e.g. the number of nonzeros of QSGD's sparse stream). The field must have been written.
    public mutating func patchLeading32Bits(_ value: UInt32) {
        if words.isEmpty {
            precondition(filled >= 32, "BitWriter.patchLeading32Bits: fewer than 32 bits written")
            accumulator = (accumulator & ~0xFFFF_FFFF) | UInt64(value)
        } else {
            words[0] = (words[0] & ~0xFFFF_FFFF) | UInt64(value)
        }
    }

    /// The bytes written: ⌈bitCount/8⌉ of them.
    public func finish() -> [UInt8] {
        let byteCount = (bitCount &+ 7) / 8
        return [UInt8](unsafeUninitializedCapacity: byteCount) { buffer, count in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            words.withUnsafeBytes { src in
                raw.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[0 ..< min(src.count, byteCount)]))
            }
            var tail = accumulator.littleEndian
            let done = words.count * 8
            withUnsafeBytes(of: &tail) { t in
                for i in 0 ..< (byteCount - done) { raw[done + i] = t[i] }
            }
            count = byteCount
        }
    }
}
