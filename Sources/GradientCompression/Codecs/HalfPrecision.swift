/// fp32 → fp16 / bf16 conversions with round-to-nearest-even, and back, over buffers.
///
/// fp16 uses Swift's `Float16` (IEEE binary16; the conversion instruction rounds to nearest
/// even). bf16 keeps the top 16 bits of the fp32 pattern after adding 0x7FFF plus the lowest kept
/// bit, which rounds to nearest with ties to even; NaN is mapped to a quiet NaN of the same sign
/// first so the rounding carry cannot turn it into Inf.
public enum HalfPrecision {
    /// The fp16 patterns of `source`, RNE. Finite values of magnitude ≥ 65520 become ±Inf (IEEE
    /// overflow). Returns true if every result is finite (no NaN/Inf in, no overflow).
    @inlinable @discardableResult
    public static func toFloat16(_ source: UnsafeBufferPointer<Float>, _ target: UnsafeMutablePointer<UInt16>) -> Bool {
        let n = source.count
        guard let s = source.baseAddress else { return true }
        var nonFinite = SIMD16<UInt16>(repeating: 0)
        var i = 0
        while i &+ 16 <= n {
            let v = UnsafeRawPointer(s + i).loadUnaligned(as: SIMD16<Float>.self)
            let h = SIMD16<Float16>(v)
            UnsafeMutableRawPointer(target + i).storeBytes(of: h, as: SIMD16<Float16>.self)
            // Exponent all ones: Inf or NaN.
            let bits = unsafeBitCast(h, to: SIMD16<UInt16>.self)
            nonFinite |= ((bits & 0x7C00) &+ 0x0400) & 0x8000
            i &+= 16
        }
        var finite = nonFinite == .zero
        while i < n { let h = Float16(s[i]); target[i] = h.bitPattern; finite = finite && h.isFinite; i &+= 1 }
        return finite
    }

    /// Adds `weight ×` the fp16 values to `target`.
    @inlinable
    public static func addFloat16(_ source: UnsafePointer<UInt16>, weight: Float, into target: UnsafeMutableBufferPointer<Float>) {
        guard let t = target.baseAddress else { return }
        let n = target.count
        var i = 0
        while i &+ 16 <= n {
            let h = UnsafeRawPointer(source + i).loadUnaligned(as: SIMD16<Float16>.self)
            let v = UnsafeRawPointer(t + i).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(t + i).storeBytes(of: v + weight * SIMD16<Float>(h), as: SIMD16<Float>.self)
            i &+= 16
        }
        while i < n { t[i] += weight * Float(Float16(bitPattern: source[i])); i &+= 1 }
    }

    /// The bf16 pattern of one float, RNE.
    @inlinable
    public static func bfloat16(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x40) }
        return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }

    /// The bf16 patterns of `source`, RNE. Returns true if every result is finite (values within
    /// 2⁻⁸ ulp of fp32's largest round up to Inf).
    @inlinable @discardableResult
    public static func toBFloat16(_ source: UnsafeBufferPointer<Float>, _ target: UnsafeMutablePointer<UInt16>) -> Bool {
        let n = source.count
        guard let s = source.baseAddress else { return true }
        var nonFinite = SIMD16<UInt32>(repeating: 0)
        var i = 0
        while i &+ 16 <= n {
            let bits = UnsafeRawPointer(s + i).loadUnaligned(as: SIMD16<UInt32>.self)
            let rounded = (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) &>> 16
            // NaN (exponent all ones, mantissa nonzero): keep it a quiet NaN.
            let nan = (bits & 0x7FFF_FFFF) .> 0x7F80_0000
            let result = rounded.replacing(with: (bits &>> 16) | 0x40, where: nan)
            UnsafeMutableRawPointer(target + i).storeBytes(of: SIMD16<UInt16>(truncatingIfNeeded: result), as: SIMD16<UInt16>.self)
            nonFinite |= ((result & 0x7F80) &+ 0x0080) & 0x8000
            i &+= 16
        }
        var finite = nonFinite == .zero
        while i < n { target[i] = bfloat16(s[i]); finite = finite && target[i] & 0x7F80 != 0x7F80; i &+= 1 }
        return finite
    }

    /// Adds `weight ×` the bf16 values to `target`.
    @inlinable
    public static func addBFloat16(_ source: UnsafePointer<UInt16>, weight: Float, into target: UnsafeMutableBufferPointer<Float>) {
        guard let t = target.baseAddress else { return }
        let n = target.count
        var i = 0
        while i &+ 16 <= n {
            let h = SIMD16<UInt32>(truncatingIfNeeded: UnsafeRawPointer(source + i).loadUnaligned(as: SIMD16<UInt16>.self))
            let x = unsafeBitCast(h &<< 16, to: SIMD16<Float>.self)
            let v = UnsafeRawPointer(t + i).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(t + i).storeBytes(of: v + weight * x, as: SIMD16<Float>.self)
            i &+= 16
        }
        while i < n { t[i] += weight * Float(bitPattern: UInt32(source[i]) << 16); i &+= 1 }
    }

    /// The largest finite fp16 value.
    public static let largestFloat16: Float = 65504
}
