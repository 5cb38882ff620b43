/// An unchecked least-significant-bit-first bit writer into memory the caller has sized, for
/// the hot loops of the encoders (the same bit order as `BitWriter`).
///
/// Every `append` masks the field to its width, ORs it into a 64-bit accumulator and stores the
/// accumulator as one unaligned 8-byte word at the current byte, then advances by the whole bytes
/// completed: no branch and no per-field bounds check. The accumulator keeps fewer than 8 bits
/// between calls, so a field of up to 56 bits always fits. The caller guarantees a capacity of at
/// least ⌈bits written/8⌉ + 8 bytes (the last store writes 8 bytes), from a bound proven for its
/// format.
@usableFromInline
struct BitSink {
    @usableFromInline let base: UnsafeMutableRawPointer
    /// The byte at which the accumulator is stored.
    @usableFromInline var byte: Int
    @usableFromInline var accumulator: UInt64 = 0
    /// Bits pending in `accumulator` (< 8 between calls).
    @usableFromInline var filled = 0

    @inlinable
    init(_ base: UnsafeMutableRawPointer, startingAtByte byte: Int) {
        self.base = base
        self.byte = byte
    }

    /// Appends the low `bits` bits of `value` (0 ≤ bits ≤ 56); higher bits of `value` are masked
    /// off, so a wrong value cannot reach the fields after it.
    @inlinable @inline(__always)
    mutating func append(_ value: UInt64, bits: Int) {
        accumulator |= (value & ((1 &<< UInt64(truncatingIfNeeded: bits)) &- 1)) &<< UInt64(truncatingIfNeeded: filled)
        filled &+= bits
        (base + byte).storeBytes(of: accumulator.littleEndian, as: UInt64.self)
        byte &+= filled &>> 3
        accumulator = accumulator &>> UInt64(truncatingIfNeeded: filled & 56)
        filled &= 7
    }

    /// Appends `bits` zero bits (any count).
    @inlinable
    mutating func appendZeros(_ bits: Int) {
        var left = bits
        while left > 0 { let k = Swift.min(left, 56); append(0, bits: k); left &-= k }
    }

    /// The bytes used so far, counting a partly filled last byte.
    @inlinable var byteCount: Int { byte &+ (filled &+ 7) &>> 3 }
}

/// A `BitSink` in two registers for loops that write several streams at once: the absolute bit
/// position and the pending bits of the byte it lies in (the caller passes the base pointer, shared
/// by the streams). Same bit order and capacity rule as `BitSink`.
@usableFromInline
struct PositionedBits {
    /// Bits written, counted from the shared base (a stream starting at byte b starts at bit 8b).
    @usableFromInline var bit: Int
    /// The bits of the byte `bit / 8` written so far (below bit % 8), and zeros above.
    @usableFromInline var pending: UInt64 = 0

    @inlinable init(bit: Int) { self.bit = bit }

    @inlinable init(_ sink: BitSink) {
        bit = sink.byte &* 8 &+ sink.filled
        pending = sink.accumulator
    }

    /// The same stream as a `BitSink` (for the rare long codes).
    @inlinable func sink(_ base: UnsafeMutableRawPointer) -> BitSink {
        var s = BitSink(base, startingAtByte: bit &>> 3)
        s.accumulator = pending
        s.filled = bit & 7
        return s
    }

    /// Appends the low `bits` bits of `value` (0 ≤ bits ≤ 56; higher bits masked off): one
    /// unaligned 8-byte store at the current byte, then the pending bits move down by the whole
    /// bytes completed.
    @inlinable @inline(__always)
    mutating func append(_ value: UInt64, bits: Int, _ base: UnsafeMutableRawPointer) {
        pending |= (value & ((1 &<< UInt64(truncatingIfNeeded: bits)) &- 1)) &<< UInt64(truncatingIfNeeded: bit & 7)
        (base + (bit &>> 3)).storeBytes(of: pending.littleEndian, as: UInt64.self)
        let next = bit &+ bits
        pending = pending &>> UInt64(truncatingIfNeeded: (next & ~7) &- (bit & ~7))
        bit = next
    }

    /// The bytes up to the last bit written, counting a partly filled last byte, from the base.
    @inlinable var byteCount: Int { (bit &+ 7) &>> 3 }
}

extension EliasGamma {
    /// The code of `value` ≥ 1 as one field (z zeros, a one, the low z bits of `value`, z = ⌊log₂ value⌋)
    /// and its length 2z + 1, for values below 2³¹ (codes of at most 61 bits).
    @inlinable @inline(__always)
    static func field(_ value: UInt64) -> (code: UInt64, bits: Int) {
        let z = 63 &- value.leadingZeroBitCount
        // ((value << 1) | 1) << z puts the one at bit z and value's bits above it; the leading one of
        // `value` lands at bit 2z + 1, just past the code, and is cleared.
        let code = ((value &<< 1) | 1) &<< UInt64(truncatingIfNeeded: z) ^ (1 &<< UInt64(truncatingIfNeeded: 2 &* z &+ 1))
        return (code, 2 &* z &+ 1)
    }
}

extension BitSink {
    /// Appends the Elias gamma code of `value` (1 ≤ value < 2⁵⁶) whatever its length.
    @inlinable
    mutating func appendGamma(_ value: UInt64) {
        let z = 63 &- value.leadingZeroBitCount
        if z <= 27 {
            let f = EliasGamma.field(value)
            append(f.code, bits: f.bits)
        } else {
            // z zeros, then the one and value's low z bits: ((value − 2ᶻ) << 1) | 1 in z + 1 bits.
            appendZeros(z)
            append(((value ^ (1 &<< UInt64(z))) &<< 1) | 1, bits: z &+ 1)
        }
    }
}

extension EliasGamma {
    /// For levels 0...maximum (≤ 2¹⁶): entry 2ℓ + sign = (sign | γ(ℓ) << 1) << 8 | (2⌊log₂ ℓ⌋ + 2),
    /// the sign bit and level code of one QSGD nonzero as a single field; entries for ℓ = 0 are 0.
    @usableFromInline
    static func signedLevelTable(maximum: Int) -> [UInt64] {
        precondition((0...(1 << 16)).contains(maximum), "EliasGamma.signedLevelTable: maximum \(maximum) out of range")
        var table = [UInt64](repeating: 0, count: 2 * (maximum + 1))
        for level in stride(from: 1, through: maximum, by: 1) {
            let f = field(UInt64(level))
            for sign in 0..<2 { table[2 * level + sign] = (UInt64(sign) | f.code << 1) << 8 | UInt64(f.bits + 1) }
        }
        return table
    }
}
