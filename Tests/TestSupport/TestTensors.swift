import LinearAlgebra

/// A deterministic N(0, σ²) tensor: Philox(seed, stream), so every run of a test sees the same
/// numbers.
public func normalTensor(_ shape: [Int], seed: UInt64, stream: UInt64 = 7, standardDeviation: Float = 1) -> Tensor {
    Philox(seed: seed, stream: stream).normalTensor(shape: shape, standardDeviation: standardDeviation)
}

/// ‖a − b‖ / ‖b‖ over all tensors, in Double: how far a result is from the reference `b`.
public func relativeDifference(_ a: [Tensor], _ b: [Tensor]) -> Double {
    var difference = 0.0, norm = 0.0
    for (x, y) in zip(a, b) {
        for (u, v) in zip(x.scalars, y.scalars) {
            difference += Double(u - v) * Double(u - v)
            norm += Double(v) * Double(v)
        }
    }
    return (difference / max(norm, .leastNormalMagnitude)).squareRoot()
}

/// ‖a − b‖ / max(‖a‖, ‖b‖, floor): the symmetric relative error of two vectors, with a floor
/// so that two near-zero vectors compare as close.
public func relativeError(_ a: [Double], _ b: [Double], floor: Double = 1e-3) -> Double {
    let diff = zip(a, b).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
    let na = a.reduce(0.0) { $0 + $1 * $1 }.squareRoot(), nb = b.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
    return diff / max(na, nb, floor)
}
