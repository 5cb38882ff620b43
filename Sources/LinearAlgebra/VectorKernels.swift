/// Element-wise kernels over contiguous `Float` buffers.
///
/// All take `UnsafeBufferPointer`s so hot loops carry no copy-on-write or
/// bounds checks; lengths are checked once at entry (a mismatch is a
/// programming error in the caller and traps with both lengths). Reductions
/// accumulate in `SIMD16<Float>` lanes: a scalar float accumulator does not
/// vectorize (measured 8× slower, SWIFT-NOTES.md), and 16 partial sums also
/// lose less precision than one running sum over millions of terms.
/// The summation order is fixed, so results are bit-identical run to run.
public enum Vector {
    @inlinable static func check(_ a: Int, _ b: Int, _ op: StaticString) {
        precondition(a == b, "Vector.\(op): lengths \(a) and \(b) differ")
    }

    /// y ← y + α·x
    @inlinable
    public static func axpy(_ alpha: Float, _ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableBufferPointer<Float>) {
        check(x.count, y.count, "axpy")
        let n = x.count
        guard n > 0, let xp = x.baseAddress, let yp = y.baseAddress else { return }
        for i in 0..<n { yp[i] += alpha * xp[i] }
    }

    /// y ← y + x
    @inlinable
    public static func add(_ x: UnsafeBufferPointer<Float>, to y: UnsafeMutableBufferPointer<Float>) {
        check(x.count, y.count, "add")
        guard let xp = x.baseAddress, let yp = y.baseAddress else { return }
        for i in 0..<x.count { yp[i] += xp[i] }
    }

    /// z ← a + b
    @inlinable
    public static func sum(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>,
                           into z: UnsafeMutableBufferPointer<Float>) {
        check(a.count, b.count, "sum"); check(a.count, z.count, "sum")
        guard let ap = a.baseAddress, let bp = b.baseAddress, let zp = z.baseAddress else { return }
        for i in 0..<a.count { zp[i] = ap[i] + bp[i] }
    }

    /// z ← a − b
    @inlinable
    public static func difference(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>,
                                  into z: UnsafeMutableBufferPointer<Float>) {
        check(a.count, b.count, "difference"); check(a.count, z.count, "difference")
        guard let ap = a.baseAddress, let bp = b.baseAddress, let zp = z.baseAddress else { return }
        for i in 0..<a.count { zp[i] = ap[i] - bp[i] }
    }

    /// x ← α·x
    @inlinable
    public static func scale(_ x: UnsafeMutableBufferPointer<Float>, by alpha: Float) {
        guard let xp = x.baseAddress else { return }
        for i in 0..<x.count { xp[i] *= alpha }
    }

    /// Σ xᵢ·yᵢ
    @inlinable
    public static func dot(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeBufferPointer<Float>) -> Float {
        check(x.count, y.count, "dot")
        return reduce(x, y) { acc, a, b in acc += a * b } scalar: { $0 * $1 }
    }

    /// Σ xᵢ
    @inlinable
    public static func sum(_ x: UnsafeBufferPointer<Float>) -> Float {
        reduce(x, x) { acc, a, _ in acc += a } scalar: { a, _ in a }
    }

    /// Σ xᵢ²
    @inlinable
    public static func sumOfSquares(_ x: UnsafeBufferPointer<Float>) -> Float {
        reduce(x, x) { acc, a, _ in acc += a * a } scalar: { a, _ in a * a }
    }

    /// ‖x‖₂
    @inlinable
    public static func norm2(_ x: UnsafeBufferPointer<Float>) -> Float { sumOfSquares(x).squareRoot() }

    /// ‖x‖₁
    @inlinable
    public static func norm1(_ x: UnsafeBufferPointer<Float>) -> Float {
        reduce(x, x) { acc, a, _ in acc += pointwiseMax(a, -a) } scalar: { a, _ in abs(a) }
    }

    /// ‖x‖∞ (0 for an empty buffer; NaN if any element is NaN).
    ///
    /// Compares the 31-bit magnitude patterns as signed 32-bit integers: their order is the order
    /// of |x|, and every NaN pattern lies above +Inf's, so the largest pattern is the answer (a NaN
    /// becomes the canonical NaN). The baseline x86-64 target (SSE2) vectorizes these integer
    /// compares; the float `pointwiseMax` lanes with a separate NaN test measured ~10× slower.
    @inlinable
    public static func normInfinity(_ x: UnsafeBufferPointer<Float>) -> Float {
        guard let p = x.baseAddress else { return 0 }
        let n = x.count
        var acc = SIMD16<Int32>(repeating: 0)
        var i = 0
        while i &+ 16 <= n {
            let v = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Int32>.self) & 0x7FFF_FFFF
            acc.replace(with: v, where: v .> acc)
            i &+= 16
        }
        var largest = acc.max()
        while i < n {
            let v = Int32(bitPattern: p[i].bitPattern & 0x7FFF_FFFF)
            largest = v > largest ? v : largest
            i &+= 1
        }
        return largest > 0x7F80_0000 ? .nan : Float(bitPattern: UInt32(bitPattern: largest))
    }

    /// The shared reduction loop: 16 lanes, then a scalar tail, then the lanes summed in a fixed order.
    @inlinable
    static func reduce(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeBufferPointer<Float>,
                       _ lane: (inout SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) -> Void,
                       scalar: (Float, Float) -> Float) -> Float {
        guard let xp = x.baseAddress, let yp = y.baseAddress else { return 0 }
        let n = x.count
        var acc0 = SIMD16<Float>(repeating: 0), acc1 = SIMD16<Float>(repeating: 0)
        var i = 0
        while i &+ 32 <= n {
            lane(&acc0, UnsafeRawPointer(xp + i).loadUnaligned(as: SIMD16<Float>.self),
                 UnsafeRawPointer(yp + i).loadUnaligned(as: SIMD16<Float>.self))
            lane(&acc1, UnsafeRawPointer(xp + i + 16).loadUnaligned(as: SIMD16<Float>.self),
                 UnsafeRawPointer(yp + i + 16).loadUnaligned(as: SIMD16<Float>.self))
            i &+= 32
        }
        var tail: Float = 0
        while i < n { tail += scalar(xp[i], yp[i]); i &+= 1 }
        return (acc0 + acc1).sum() + tail
    }
}
