/// A 16-bit floating-point format that `Communicator.allReduce(_:format:operation:)` reduces.
///
/// Conversions are exact one way (16 → 32 bits) and round to nearest, ties to even, the other
/// (32 → 16 bits), with branch-free constructions (Dukhan's FP16 library for fp16; add 0x7FFF
/// plus the lowest kept bit for bf16), tested against Swift's `Float16`. GradientCompression's
/// fp16/bf16 compressor converts with these functions (and the buffer conversions of
/// `HalfWidthFormat+Buffers.swift`), so the fp16/bf16 reducers and this all-reduce round identically.
/// NaN stays NaN (quiet, same sign); fp16 overflow (|x| ≥ 65520) becomes ±Inf.
public enum HalfWidthFormat: String, Sendable, Codable, CaseIterable {
    /// IEEE binary16: 1 sign, 5 exponent, 10 mantissa bits.
    case float16
    /// bfloat16: the top 16 bits of a binary32 (1 sign, 8 exponent, 7 mantissa bits).
    case bfloat16

    /// The exact fp32 value of a 16-bit pattern.
    @inlinable @inline(__always)
    public func float(_ bits: UInt16) -> Float {
        switch self {
        case .bfloat16:
            return Float(bitPattern: UInt32(bits) << 16)
        case .float16:
            let w = UInt32(bits) << 16
            let sign = w & 0x8000_0000
            let twice = w &+ w
            let normalized = Float(bitPattern: (twice >> 4) &+ (0xE0 << 23)) * 0x1p-112
            let subnormal = Float(bitPattern: (twice >> 17) | (126 << 23)) - 0.5
            return Float(bitPattern: sign | (twice < (1 << 27) ? subnormal.bitPattern : normalized.bitPattern))
        }
    }

    /// The 16-bit pattern nearest to `value` (ties to even).
    @inlinable @inline(__always)
    public func bits(_ value: Float) -> UInt16 {
        let w = value.bitPattern
        switch self {
        case .bfloat16:
            let rounded = (w &+ 0x7FFF &+ ((w >> 16) & 1)) >> 16
            return UInt16(truncatingIfNeeded: (w & 0x7FFF_FFFF) > 0x7F80_0000 ? (w >> 16) | 0x40 : rounded)
        case .float16:
            // |x|·2¹¹²·2⁻¹¹⁰ saturates out-of-range values; adding a power of two aligned with
            // x's exponent makes the fp32 adder round the discarded mantissa bits (RNE).
            let shiftedLeft = w &+ w
            let sign = w & 0x8000_0000
            var bias = shiftedLeft & 0xFF00_0000
            bias = bias < 0x7100_0000 ? 0x7100_0000 : bias
            let base = Float(bitPattern: (bias >> 1) &+ 0x0780_0000) + (Swift.abs(value) * 0x1p112) * 0x1p-110
            let b = base.bitPattern
            let nonSign = ((b >> 13) & 0x7C00) &+ (b & 0x0FFF)
            return UInt16(truncatingIfNeeded: (sign >> 16) | (shiftedLeft > 0xFF00_0000 ? 0x7E00 : nonSign))
        }
    }

    /// True if the pattern is Inf or NaN (exponent all ones).
    @inlinable @inline(__always)
    public func isNonFinite(_ bits: UInt16) -> Bool {
        let exponent: UInt16 = self == .float16 ? 0x7C00 : 0x7F80
        return bits & exponent == exponent
    }
}
