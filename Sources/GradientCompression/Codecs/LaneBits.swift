/// The union (bitwise or) of eight lanes, for packing one bit field per lane into a word.
///
/// Not `wrappedSum()` (equal for disjoint bits): inlined into TernGrad's field packing, the
/// release build returned the sum without lane 0 (caught by the unbiasedness test, reproduced in
/// isolation on 2026-11-23 with Swift 6.3.1), so the halves are or-ed explicitly.
@inlinable @inline(__always)
func laneUnion(_ v: SIMD8<UInt32>) -> UInt32 {
    let half = v.lowHalf | v.highHalf
    return (half[0] | half[1]) | (half[2] | half[3])
}
