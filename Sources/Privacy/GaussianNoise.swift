import Foundation
import LinearAlgebra

/// Gaussian noise for DP-SGD, drawn from a named Philox stream so a run is deterministic for its
/// seed and every (step, rank, tensor) gets its own noise.
///
/// Box–Muller on 53-bit uniforms in double precision: the radius √(−2 log u₁) then reaches 8.6σ
/// (the 24-bit uniforms of `Philox.fillNormal` stop at 5.8σ, a visibly truncated tail). The values
/// are still floating-point samples, not an exact Gaussian (Mironov 2012's caveat applies).
public enum GaussianNoise {
    /// Adds N(0, standardDeviation²) to every element of `buffer`, from stream `stream` under `seed`.
    public static func add(to buffer: UnsafeMutableBufferPointer<Float>, standardDeviation: Double, seed: UInt64, stream: UInt64) {
        guard standardDeviation > 0 else { return }
        let philox = Philox(seed: seed, stream: stream)
        let n = buffer.count
        var i = 0
        var blockIndex: UInt64 = 0
        while i < n {
            let w = philox.block(blockIndex)
            let u1 = (Double((UInt64(w[0]) << 21) | (UInt64(w[1]) >> 11)) + 1) * 0x1p-53  // (0, 1]
            let u2 = Double((UInt64(w[2]) << 21) | (UInt64(w[3]) >> 11)) * 0x1p-53       // [0, 1)
            let radius = (-2 * log(u1)).squareRoot() * standardDeviation
            let angle = 2 * Double.pi * u2
            buffer[i] += Float(radius * cos(angle))
            if i + 1 < n { buffer[i + 1] += Float(radius * sin(angle)) }
            i += 2
            blockIndex &+= 1
        }
    }
}
