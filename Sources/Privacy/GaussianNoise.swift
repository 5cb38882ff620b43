import Foundation
import LinearAlgebra

/// Gaussian noise for DP-SGD, drawn from a named stream so a run is deterministic for its seed and
/// every (step, rank, tensor) gets its own noise.
///
/// Marsaglia's polar method on pairs of 53-bit uniforms in (−1, 1) from xoshiro256** (seeded per
/// stream): no trigonometric calls, and with s = u² + v² as small as 2⁻¹⁰⁶ the tail reaches about
/// 12σ (the 24-bit uniforms of `Philox.fillNormal` stop at 5.8σ, a visibly truncated tail). The
/// values are still floating-point samples, not an exact Gaussian (Mironov 2012's caveat applies).
public enum GaussianNoise {
    /// Adds N(0, standardDeviation²) to every element of `buffer`, from stream `stream` under `seed`.
    public static func add(to buffer: UnsafeMutableBufferPointer<Float>, standardDeviation: Double, seed: UInt64, stream: UInt64) {
        guard standardDeviation > 0, let base = buffer.baseAddress else { return }
        var random = Xoshiro256(seed: seed, stream: stream)
        let n = buffer.count
        var i = 0
        while i < n {
            let u = Double(random.next() >> 11) * 0x1p-52 - 1  // [−1, 1) on a 2⁻⁵² grid
            let v = Double(random.next() >> 11) * 0x1p-52 - 1
            let s = u * u + v * v
            if s >= 1 || s == 0 { continue }
            let factor = (-2 * log(s) / s).squareRoot() * standardDeviation
            base[i] += Float(u * factor)
            if i + 1 < n { base[i + 1] += Float(v * factor) }
            i += 2
        }
    }
}
