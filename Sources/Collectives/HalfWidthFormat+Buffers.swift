#if arch(x86_64)
import CHalfConversion
#endif

/// Conversions of whole buffers to and from a `HalfWidthFormat`.
///
/// The portable path is the per-value functions in loops specialized per format, which the
/// compiler vectorizes. For fp16 on x86-64 CPUs with F16C, the C kernels of `CHalfConversion` run
/// instead (VCVTPS2PH / VCVTPH2PS, 8 values per instruction; Swift cannot enable F16C for one
/// function, and the default x86-64 target lacks it): ~3× faster here. Both paths give the same
/// bits for every finite value (both are IEEE round-to-nearest-even; tested pattern by pattern);
/// a NaN may keep a different payload. bf16 has no conversion instruction on this CPU.
extension HalfWidthFormat {
    /// True when fp16 buffer conversions use the F16C kernels (a CPUID check, done once).
    public static let float16Hardware: Bool = {
        #if arch(x86_64)
        return half_conversion_available() == 1
        #else
        return false
        #endif
    }()

    /// target[i] = the pattern of source[i] (RNE). Returns true if every pattern is finite (no NaN
    /// or Inf in `source`, and for fp16 no value that overflows, |x| ≥ 65520).
    public func narrow(_ source: UnsafeBufferPointer<Float>, into target: UnsafeMutablePointer<UInt16>) -> Bool {
        #if arch(x86_64)
        if self == .float16, Self.float16Hardware, let s = source.baseAddress { return half_conversion_to_float16(s, target, source.count) == 1 }
        #endif
        switch self {
        case .float16: return Self.narrow(source, into: target, Float16Codec.self)
        case .bfloat16: return Self.narrow(source, into: target, BFloat16Codec.self)
        }
    }

    /// target[i] = source[i] rounded to the format (RNE), held in fp32. Returns true if every
    /// result is finite.
    public func round(_ source: UnsafeBufferPointer<Float>, into target: UnsafeMutablePointer<Float>) -> Bool {
        #if arch(x86_64)
        if self == .float16, Self.float16Hardware, let s = source.baseAddress {
            return half_conversion_round_through_float16(s, target, source.count) == 1
        }
        #endif
        switch self {
        case .float16: return Self.round(source, into: target, Float16Codec.self)
        case .bfloat16: return Self.round(source, into: target, BFloat16Codec.self)
        }
    }

    /// target[i] = the value of pattern source[i] (exact).
    public func widen(_ source: UnsafePointer<UInt16>, into target: UnsafeMutableBufferPointer<Float>) {
        #if arch(x86_64)
        if self == .float16, Self.float16Hardware, let t = target.baseAddress { return half_conversion_from_float16(source, t, target.count) }
        #endif
        switch self {
        case .float16: for i in 0 ..< target.count { target[i] = Float16Codec.float(source[i]) }
        case .bfloat16: for i in 0 ..< target.count { target[i] = BFloat16Codec.float(source[i]) }
        }
    }

    /// target[i] += weight × the value of pattern source[i] (a multiply, then an add: two roundings
    /// on both paths; with weight 1 the multiply is exact).
    public func add(_ source: UnsafePointer<UInt16>, weight: Float, into target: UnsafeMutableBufferPointer<Float>) {
        #if arch(x86_64)
        if self == .float16, Self.float16Hardware, let t = target.baseAddress { return half_conversion_add_float16(source, weight, t, target.count) }
        #endif
        switch self {
        case .float16: for i in 0 ..< target.count { target[i] += weight * Float16Codec.float(source[i]) }
        case .bfloat16: for i in 0 ..< target.count { target[i] += weight * BFloat16Codec.float(source[i]) }
        }
    }

    /// True if any 16-bit pattern of `patterns` (little-endian, as sent) is Inf or NaN.
    ///
    /// One OR of `exponentCarry` over the buffer (bit 15 set exactly for an all-ones exponent),
    /// 16 patterns at a time.
    public func holdsNonFinite(_ patterns: UnsafeRawBufferPointer) -> Bool {
        switch self {
        case .float16: return Self.holdsNonFinite(patterns, Float16Codec.self)
        case .bfloat16: return Self.holdsNonFinite(patterns, BFloat16Codec.self)
        }
    }

    private static func holdsNonFinite<Codec: HalfCodec>(_ patterns: UnsafeRawBufferPointer, _: Codec.Type) -> Bool {
        let count = patterns.count / 2
        guard let base = patterns.baseAddress else { return false }
        var carries = SIMD16<UInt16>(), tail: UInt16 = 0
        var i = 0
        while i &+ 16 <= count {
            carries |= Codec.exponentCarry(base.loadUnaligned(fromByteOffset: 2 &* i, as: SIMD16<UInt16>.self))
            i &+= 16
        }
        for j in i ..< count { tail |= Codec.exponentCarry(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 &* j, as: UInt16.self))) }
        return (carries.max() | tail) & 0x8000 != 0
    }

    private static func narrow<Codec: HalfCodec>(_ source: UnsafeBufferPointer<Float>, into target: UnsafeMutablePointer<UInt16>,
                                                 _: Codec.Type) -> Bool {
        var carries: UInt16 = 0
        for i in 0 ..< source.count {
            let bits = Codec.bits(source[i])
            target[i] = bits
            carries |= Codec.exponentCarry(bits)
        }
        return carries & 0x8000 == 0
    }

    private static func round<Codec: HalfCodec>(_ source: UnsafeBufferPointer<Float>, into target: UnsafeMutablePointer<Float>,
                                                _: Codec.Type) -> Bool {
        var carries: UInt16 = 0
        for i in 0 ..< source.count {
            let bits = Codec.bits(source[i])
            target[i] = Codec.float(bits)
            carries |= Codec.exponentCarry(bits)
        }
        return carries & 0x8000 == 0
    }
}

/// A 16-bit format's conversions as static functions, so loops specialize per format.
protocol HalfCodec {
    static func float(_ bits: UInt16) -> Float
    static func bits(_ value: Float) -> UInt16
    /// The pattern's exponent field plus its lowest bit: bit 15 is set exactly when the field is
    /// all ones (Inf or NaN), so one OR over a buffer of these decides whether any is non-finite.
    static func exponentCarry(_ bits: UInt16) -> UInt16
    static func exponentCarry(_ bits: SIMD16<UInt16>) -> SIMD16<UInt16>
}

enum Float16Codec: HalfCodec {
    @inline(__always) static func float(_ bits: UInt16) -> Float { HalfWidthFormat.float16.float(bits) }
    @inline(__always) static func bits(_ value: Float) -> UInt16 { HalfWidthFormat.float16.bits(value) }
    @inline(__always) static func exponentCarry(_ bits: UInt16) -> UInt16 { (bits & 0x7C00) &+ 0x0400 }
    @inline(__always) static func exponentCarry(_ bits: SIMD16<UInt16>) -> SIMD16<UInt16> { (bits & 0x7C00) &+ 0x0400 }
}

enum BFloat16Codec: HalfCodec {
    @inline(__always) static func float(_ bits: UInt16) -> Float { HalfWidthFormat.bfloat16.float(bits) }
    @inline(__always) static func bits(_ value: Float) -> UInt16 { HalfWidthFormat.bfloat16.bits(value) }
    @inline(__always) static func exponentCarry(_ bits: UInt16) -> UInt16 { (bits & 0x7F80) &+ 0x0080 }
    @inline(__always) static func exponentCarry(_ bits: SIMD16<UInt16>) -> SIMD16<UInt16> { (bits & 0x7F80) &+ 0x0080 }
}
