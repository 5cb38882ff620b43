/// max |xᵢ| of a buffer: ±Inf if an element is infinite, NaN if one is NaN, 0 when empty.
///
/// Compares the 31-bit magnitude patterns as signed 32-bit integers (their order is the order
/// of |x|, and NaN patterns lie above Inf), which the baseline x86-64 target vectorizes with
/// SSE2 compares; `Vector.normInfinity`'s generic SIMD lanes measured ~10× slower here.
@inlinable
func maximumMagnitude(_ values: UnsafeBufferPointer<Float>) -> Float {
    var largest: Int32 = 0
    for x in values {
        let key = Int32(bitPattern: x.bitPattern & 0x7FFF_FFFF)
        largest = key > largest ? key : largest
    }
    return Float(bitPattern: UInt32(bitPattern: largest))
}
