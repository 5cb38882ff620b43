import Collectives

/// fp32 → fp16 / bf16 conversions with round-to-nearest-even, and back, over buffers. The
/// per-value conversions are `Collectives.HalfWidthFormat`'s (the half-width all-reduce rounds
/// with the same code, so a value rounded there and here gives the same bits).
///
/// The default x86-64 target has no F16C instructions, so Swift's `Float16(x)` is a library
/// call per element (measured ~10 ns). These kernels use integer and fp32 arithmetic only, in
/// branch-free loops the compiler vectorizes:
/// - fp32 → fp16 is the scaling construction of M. Dukhan's FP16 library
///   (`fp16_ieee_from_fp32_value`): |x|·2¹¹²·2⁻¹¹⁰ flushes out-of-range values to Inf/zero
///   scales, and adding a power of two aligned with x's exponent makes the fp32 adder do the
///   round-to-nearest-even of the discarded mantissa bits (subnormals included);
/// - fp16 → fp32 is the same library's exact construction (normal values by exponent rebias and
///   a multiply by 2⁻¹¹², subnormals by a magic-number subtraction);
/// - bf16 keeps the top 16 bits of the fp32 pattern after adding 0x7FFF plus the lowest kept
///   bit (RNE); NaN is mapped to a quiet NaN of the same sign so the carry cannot make it Inf.
/// Tests compare every one against Swift's `Float16` conversions (all 65,536 fp16 patterns back).
public enum HalfPrecision {
    /// The fp16 pattern of one float, RNE (finite values of magnitude ≥ 65520 become ±Inf).
    @inlinable @inline(__always)
    public static func float16(_ f: Float) -> UInt16 { HalfWidthFormat.float16.bits(f) }

    /// The float of one fp16 pattern (exact).
    @inlinable @inline(__always)
    public static func float(fromFloat16 h: UInt16) -> Float { HalfWidthFormat.float16.float(h) }

    /// The fp16 patterns of `source`, RNE. Returns true if every result is finite (no NaN/Inf
    /// in the input and no overflow).
    @inlinable @discardableResult
    public static func toFloat16(_ source: UnsafeBufferPointer<Float>, _ target: UnsafeMutablePointer<UInt16>) -> Bool {
        var nonFinite: UInt32 = 0
        for i in 0..<source.count {
            let h = float16(source[i])
            target[i] = h
            nonFinite |= ((UInt32(h) & 0x7C00) &+ 0x0400) & 0x8000  // exponent all ones: Inf or NaN
        }
        return nonFinite == 0
    }

    /// Adds `weight ×` the fp16 values to `target`.
    @inlinable
    public static func addFloat16(_ source: UnsafePointer<UInt16>, weight: Float, into target: UnsafeMutableBufferPointer<Float>) {
        for i in 0..<target.count { target[i] += weight * float(fromFloat16: source[i]) }
    }

    /// The bf16 pattern of one float, RNE.
    @inlinable @inline(__always)
    public static func bfloat16(_ x: Float) -> UInt16 { HalfWidthFormat.bfloat16.bits(x) }

    /// The bf16 patterns of `source`, RNE. Returns true if every result is finite (values within
    /// half a bf16 ulp of fp32's largest round up to Inf).
    @inlinable @discardableResult
    public static func toBFloat16(_ source: UnsafeBufferPointer<Float>, _ target: UnsafeMutablePointer<UInt16>) -> Bool {
        var nonFinite: UInt32 = 0
        for i in 0..<source.count {
            let h = bfloat16(source[i])
            target[i] = h
            nonFinite |= ((UInt32(h) & 0x7F80) &+ 0x0080) & 0x8000
        }
        return nonFinite == 0
    }

    /// Adds `weight ×` the bf16 values to `target`.
    @inlinable
    public static func addBFloat16(_ source: UnsafePointer<UInt16>, weight: Float, into target: UnsafeMutableBufferPointer<Float>) {
        for i in 0..<target.count { target[i] += weight * Float(bitPattern: UInt32(source[i]) << 16) }
    }

    /// The largest finite fp16 value.
    public static let largestFloat16: Float = 65504
}
