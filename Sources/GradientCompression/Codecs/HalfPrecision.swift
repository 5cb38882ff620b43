import Collectives
#if arch(x86_64)
import CHalfConversion
#endif

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
///
/// On x86-64 CPUs with F16C the fp16 buffer conversions run the C kernels of `CHalfConversion`
/// instead (VCVTPS2PH/VCVTPH2PS, 8 values per instruction; Swift cannot enable F16C for one
/// function): the same bits for every finite value (both are IEEE round-to-nearest-even; tested
/// pattern by pattern), ~3× faster here, at ~1.5× one read of the input. bf16 has no such
/// instruction on this CPU and always takes the portable path.
public enum HalfPrecision {
    /// True when the fp16 buffer conversions use the F16C kernels (checked once, by CPUID).
    public static let hardwareConversion: Bool = {
        #if arch(x86_64)
        return half_conversion_available() == 1
        #else
        return false
        #endif
    }()

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
        #if arch(x86_64)
        if hardwareConversion, let s = source.baseAddress { return half_conversion_to_float16(s, target, source.count) == 1 }
        #endif
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
        #if arch(x86_64)
        if hardwareConversion, let t = target.baseAddress { return half_conversion_add_float16(source, weight, t, target.count) }
        #endif
        for i in 0..<target.count { target[i] += weight * float(fromFloat16: source[i]) }
    }

    /// target[i] = the value of `source[i]` rounded to `format` (RNE), in fp32. Returns true if
    /// every result is finite.
    public static func roundThrough(_ format: HalfWidthFormat, _ source: UnsafeBufferPointer<Float>,
                                    _ target: UnsafeMutablePointer<Float>) -> Bool {
        #if arch(x86_64)
        if format == .float16, hardwareConversion, let s = source.baseAddress {
            return half_conversion_round_through_float16(s, target, source.count) == 1
        }
        #endif
        var finite = true
        for i in 0 ..< source.count {
            let bits = format.bits(source[i])
            finite = finite && !format.isNonFinite(bits)
            target[i] = format.float(bits)
        }
        return finite
    }

    /// True if any 16-bit pattern of `patterns` (little-endian) is Inf or NaN in `format`.
    ///
    /// The exponent field plus its lowest bit carries into bit 15 exactly when the field is all
    /// ones (fp16: 0x7C00 + 0x0400 = 0x8000), so one OR over the whole buffer decides (vectorized).
    public static func holdsNonFinite(_ patterns: UnsafeRawBufferPointer, _ format: HalfWidthFormat) -> Bool {
        let exponent: UInt16 = format == .float16 ? 0x7C00 : 0x7F80
        let lowest = exponent & ~(exponent &- 1)
        var carries = SIMD16<UInt16>(), tail: UInt16 = 0
        let count = patterns.count / 2
        guard let base = patterns.baseAddress else { return false }
        var i = 0
        while i &+ 16 <= count {
            carries |= (base.loadUnaligned(fromByteOffset: 2 &* i, as: SIMD16<UInt16>.self) & exponent) &+ lowest
            i &+= 16
        }
        for j in i ..< count { tail |= (UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 &* j, as: UInt16.self)) & exponent) &+ lowest }
        return ((carries & 0x8000).max() | tail & 0x8000) != 0
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
