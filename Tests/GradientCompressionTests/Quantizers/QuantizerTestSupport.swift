import LinearAlgebra
@testable import GradientCompression
import TestSupport

/// Decodes a message back to a tensor (weight 1).
func roundTrip<C: Compressor>(_ c: C, _ t: Tensor, key: CompressionKey = CompressionKey(rank: 0, step: 0, tensor: 0)) throws -> (bytes: [UInt8], decoded: Tensor) {
    let bytes = try c.encode(t, key: key)
    return (bytes, try c.decode(bytes, shape: t.shape, key: key))
}

/// Per-coordinate mean and variance of `trials` decodings of `t`, each with its own key (step).
func decodedMoments(_ trials: Int, _ t: Tensor, _ decode: (Int) throws -> Tensor) rethrows -> (mean: [Double], variance: [Double]) {
    var sum = [Double](repeating: 0, count: t.count), sumSq = sum
    for trial in 0..<trials {
        let d = try decode(trial)
        for i in 0..<t.count { let x = Double(d.scalars[i]); sum[i] += x; sumSq[i] += x * x }
    }
    let mean = sum.map { $0 / Double(trials) }
    let variance = (0..<t.count).map { max(0, sumSq[$0] / Double(trials) - mean[$0] * mean[$0]) * Double(trials) / Double(trials - 1) }
    return (mean, variance)
}

/// The unbiasedness check used for every unbiased method: each coordinate's sample mean over
/// `trials` independent encodings lies within 5 standard errors of the true value. With n
/// coordinates the chance of a false alarm is about n·5.7e-7 per run (normal approximation);
/// seeds are fixed, so the test is deterministic. A coordinate with zero sample variance must
/// match to fp32 rounding.
func unbiasednessViolations(_ t: Tensor, mean: [Double], variance: [Double], trials: Int) -> [Int] {
    (0..<t.count).filter { i in
        let se = (variance[i] / Double(trials)).squareRoot()
        return abs(mean[i] - Double(t.scalars[i])) > 5 * se + 1e-5 * max(1, abs(Double(t.scalars[i])))
    }
}

/// Random mutations of a message: bit flips, byte overwrites, truncations, extensions.
func mutations(of message: [UInt8], count: Int, seed: UInt64) -> [[UInt8]] {
    var rng = Xoshiro256(seed: seed)
    return (0..<count).map { _ in
        var m = message
        switch rng.next() % 4 {
        case 0:
            for _ in 0 ..< 1 + Int(rng.next() % 4) where !m.isEmpty {
                m[Int(rng.next() % UInt64(m.count))] ^= UInt8(1 << (rng.next() % 8))
            }
        case 1:
            for _ in 0 ..< 1 + Int(rng.next() % 8) where !m.isEmpty {
                m[Int(rng.next() % UInt64(m.count))] = UInt8(truncatingIfNeeded: rng.next())
            }
        case 2:
            m = Array(m.prefix(m.isEmpty ? 0 : Int(rng.next() % UInt64(m.count))))
        default:
            m += (0 ..< 1 + Int(rng.next() % 16)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        }
        return m
    }
}
