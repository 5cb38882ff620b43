import CVectorKernels
import LinearAlgebra

/// QSGD's quantizer: a bucket's scale and its level words, and the decoder's inverse.
///
/// A level word is ζᵢ | [vᵢ < 0] << 31, the form both coders consume. The uniforms U come from
/// the encoding's `UniformLanes`, one step of eight per eight elements of a nonzero bucket, so a
/// message is a pure function of (seed, key, input).
///
/// Tiny buckets (scale below 2⁻⁶⁰, `smallScale`) are quantized on the bucket times 2¹⁰⁰: for them
/// s/‖v‖ can overflow fp32 (max-norm: ‖v‖ < s·2⁻¹²⁸, e.g. a subnormal maximum; 0·∞ would then make
/// NaN levels), and L2's squares underflow (the norm of a subnormal bucket comes out 0 or short).
/// Scaled, every value lies in [2⁻⁴⁹, 2⁴⁰) or is 0: the product by a power of two is exact, every
/// square is a normal float and their sum cannot overflow (d < 2⁴⁸), so the levels are those of
/// aᵢ = s·|vᵢ|/‖v‖ as for any bucket; the scale sent is ‖2¹⁰⁰v‖·2⁻¹⁰⁰ rounded to fp32 (exact for
/// max-norm) and the levels are drawn against it. The decoder applies the same power of two to
/// its unit and undoes it after multiplying by the level, so a decoded value is rounded once, to
/// fp32's subnormal grid (2⁻¹⁴⁹), rather than through a subnormal unit ‖v‖/s.
extension QSGD {
    /// Scales below this take `quantizeSmallBucket`: above it s/scale ≤ 2⁸⁴, and an L2 bucket's
    /// largest squares are normal floats.
    @usableFromInline static let smallScale: Float = 0x1p-60
    /// The power of two by which a small bucket is scaled before quantizing (and the decoder's
    /// unit for it), and its inverse.
    @usableFromInline static let smallScaleFactor: Float = 0x1p100
    @usableFromInline static let smallScaleUndo: Float = 0x1p-100

    /// The scale of `bucket`: its L2 norm or its largest magnitude.
    func scale(of bucket: UnsafeBufferPointer<Float>) -> Float {
        scaling == .l2 ? Vector.norm2(bucket) : maximumMagnitude(bucket)
    }

    /// Bucket b's scale, and its level words in `words` (all zero for a zero bucket): the elements'
    /// count and how many levels are nonzero. Throws on a non-finite scale (a NaN/Inf input, or an
    /// L2 norm beyond fp32).
    @inline(__always)
    func quantizeBucket(_ b: Int, _ v: UnsafePointer<Float>, _ n: Int, lanes: inout UniformLanes, key: CompressionKey,
                        into words: UnsafeMutablePointer<UInt32>, kernel: KernelPath = .preferred) throws -> (scale: Float, count: Int, nonzeros: Int) {
        let start = b &* bucketSize, count = Swift.min(n, start &+ bucketSize) &- start
        let bucket = UnsafeBufferPointer(start: v + start, count: count)
        let scale = scale(of: bucket)
        guard scale.isFinite else {
            throw CompressorError.nonFiniteInput(method: "qsgd", tensor: key.tensor,
                                                 detail: "bucket \(b) has a NaN/Inf element or an fp32-overflowing norm")
        }
        if scale < QSGD.smallScale {
            // A zero bucket draws no uniforms. An L2 norm of 0 may be underflow: zero only if the maximum is.
            if scale == 0, scaling == .max || maximumMagnitude(bucket) == 0 {
                words.initialize(repeating: 0, count: count)
                return (0, count, 0)
            }
            return quantizeSmallBucket(bucket, lanes: &lanes, into: words, kernel: kernel)
        }
        return (scale, count, quantizeLevels(bucket, lanes: &lanes, factor: Float(levels) / scale, into: words, kernel: kernel))
    }

    /// A nonzero bucket of scale below `smallScale`: quantized as 2¹⁰⁰·v, its scale sent as
    /// fp32(‖2¹⁰⁰v‖·2⁻¹⁰⁰) (≥ max|vᵢ|, since rounding is monotone; > 0), with the factor
    /// s/(sent·2¹⁰⁰) (sent·2¹⁰⁰ is exact).
    @inline(never)
    func quantizeSmallBucket(_ bucket: UnsafeBufferPointer<Float>, lanes: inout UniformLanes,
                             into words: UnsafeMutablePointer<UInt32>, kernel: KernelPath) -> (scale: Float, count: Int, nonzeros: Int) {
        let scaled = bucket.map { $0 * QSGD.smallScaleFactor }
        let sent = scaled.withUnsafeBufferPointer { scale(of: $0) } * QSGD.smallScaleUndo
        let nonzeros = scaled.withUnsafeBufferPointer {
            quantizeLevels($0, lanes: &lanes, factor: Float(levels) / (sent * QSGD.smallScaleFactor), into: words, kernel: kernel)
        }
        return (sent, bucket.count, nonzeros)
    }

    /// ζᵢ = ⌊aᵢ⌋ + [Uᵢ < aᵢ − ⌊aᵢ⌋], aᵢ = min(|vᵢ|·factor, s), clamped to s, written as ζᵢ | sign << 31,
    /// eight elements per step with their eight uniforms drawn in the same step (no uniform array).
    /// A bucket draws ⌈count/8⌉ steps of `lanes`; the draws of a tail beyond the bucket are unused.
    /// Returns the count of nonzero levels. On AVX2, for s < 2²³, `qsgd_levels_avx2` does the same
    /// arithmetic eight lanes to a register (the portable SIMD8 is two SSE registers, and its
    /// selects are and/andnot/or triples).
    func quantizeLevels(_ bucket: UnsafeBufferPointer<Float>, lanes: inout UniformLanes, factor: Float,
                        into words: UnsafeMutablePointer<UInt32>, kernel: KernelPath = .preferred) -> Int {
        guard let v = bucket.baseAddress else { return 0 }
        if kernel.hasAVX2 && levels < 1 << 23 {
            return lanes.withState { qsgd_levels_avx2(v, bucket.count, $0, factor, Float(levels), words) }
        }
        // Two calls with `wide` a literal, so each inlined copy has its selects folded away.
        return levels < 1 << 23 ? quantizeLevels(v, bucket.count, lanes: &lanes, factor: factor, into: words, wide: false)
                                : quantizeLevels(v, bucket.count, lanes: &lanes, factor: factor, into: words, wide: true)
    }

    @inline(__always)
    func quantizeLevels(_ v: UnsafePointer<Float>, _ count: Int, lanes: inout UniformLanes, factor: Float,
                        into words: UnsafeMutablePointer<UInt32>, wide: Bool) -> Int {
        var j = 0
        var nonzeros = SIMD8<UInt32>(repeating: 0)
        while j &+ 8 <= count {
            let x = UnsafeRawPointer(v + j).loadUnaligned(as: SIMD8<Float>.self)
            let w = levelWords(x, lanes.next(), factor, wide: wide)
            UnsafeMutableRawPointer(words + j).storeBytes(of: w, as: SIMD8<UInt32>.self)
            nonzeros &+= QSGD.isNonzero(w)
            j &+= 8
        }
        if j < count {
            // The tail: zero padding quantizes to level 0 (a = 0 and U < 0 never holds).
            var x = SIMD8<Float>(repeating: 0)
            for k in 0 ..< count &- j { x[k] = v[j &+ k] }
            let w = levelWords(x, lanes.next(), factor, wide: wide)
            for k in 0 ..< count &- j { words[j &+ k] = w[k] }
            nonzeros &+= QSGD.isNonzero(w)
        }
        return Int(nonzeros.wrappedSum())
    }

    /// 1 in the lanes whose level is nonzero, else 0: (ζ + 2³¹ − 1) >> 31 for ζ ≤ 2²⁴ (integer
    /// arithmetic: an integer `.==` mask was built lane by lane through memory, 10× slower).
    @inlinable @inline(__always)
    static func isNonzero(_ w: SIMD8<UInt32>) -> SIMD8<UInt32> { ((w & 0x7FFF_FFFF) &+ 0x7FFF_FFFF) &>> 31 }

    /// The level words of eight elements `x` with their uniforms `u` (see `quantizeLevels`);
    /// `wide` handles levels of 2²³ and more.
    ///
    /// Swift's float → integer conversions are checked, element by element, which keeps the loop
    /// scalar (measured 4× slower), so ⌊a⌋ and ζ's integer bits come from the float format
    /// instead: for 0 ≤ a < 2²³, (a + 2²³) − 2²³ is a rounded to an integer (minus one if that
    /// rounded up gives ⌊a⌋), and the low 23 bits of the float ζ + 2²³ are ζ. Floats from 2²³ to
    /// 2²⁴ (levels s ≥ 2²³) are integers already: ⌊a⌋ = a, and ζ is the mantissa with its
    /// implicit bit (2²⁴ has exponent 24).
    @inlinable @inline(__always)
    func levelWords(_ x: SIMD8<Float>, _ u: SIMD8<Float>, _ factor: Float, wide: Bool) -> SIMD8<UInt32> {
        let s = SIMD8<Float>(repeating: Float(levels)), big = SIMD8<Float>(repeating: 0x1p23)
        let bits = unsafeBitCast(x, to: SIMD8<UInt32>.self)
        var a = unsafeBitCast(bits & 0x7FFF_FFFF, to: SIMD8<Float>.self) * factor
        a.replace(with: s, where: a .> s)
        let rounded = (a + big) - big
        var lower = rounded.replacing(with: rounded - 1, where: rounded .> a)
        if wide { lower.replace(with: a, where: a .>= big) }
        var level = lower.replacing(with: lower + 1, where: u .< a - lower)
        level.replace(with: s, where: level .> s)
        var word = unsafeBitCast(level + big, to: SIMD8<UInt32>.self) & 0x7F_FFFF
        if wide {
            var large = (unsafeBitCast(level, to: SIMD8<UInt32>.self) & 0x7F_FFFF) | 0x80_0000
            large.replace(with: 1 << 24, where: level .== 0x1p24)
            word.replace(with: large, where: level .>= big)
        }
        // `x < 0`, not the sign bit: −0 is sent as +0 (the fixed-width format writes the sign of zeros).
        word.replace(with: word | 0x8000_0000, where: x .< 0)
        return word
    }

    /// The decoder's (unit, undo) for each bucket, read with the scales: the decoded value of
    /// level ζ in bucket b is weight·scale_b/s·ζ, computed as (unit_b·ζ)·undo_b, where a small
    /// scale's unit is scaled by 2¹⁰⁰ and undo_b = 2⁻¹⁰⁰ (see above), else undo_b = 1.
    func readUnits(_ reader: inout ByteReader, buckets: Int, weight: Float) throws -> [Float] {
        var units = [Float](repeating: 0, count: 2 * buckets)
        for b in 0..<buckets {
            let scale = try reader.readFloat("the scale of bucket \(b)")
            guard scale.isFinite, scale >= 0 else {
                throw GradientCompressionError.corruptMessage("QSGD bucket \(b) has scale \(scale)")
            }
            let small = scale < QSGD.smallScale
            units[2 * b] = weight * (small ? scale * QSGD.smallScaleFactor : scale) / Float(levels)
            units[2 * b + 1] = small ? QSGD.smallScaleUndo : 1
        }
        return units
    }
}
