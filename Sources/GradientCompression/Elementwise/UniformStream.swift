import LinearAlgebra

/// xoshiro256** (the generator of `LinearAlgebra.Xoshiro256`, same seeding, same output
/// sequence) with its state in four scalar words instead of a `SIMD4<UInt64>`: the per-element
/// draws of QSGD and TernGrad are the hot loop of their encoders, and lane inserts/extracts of
/// the SIMD state made each draw ~3.7× slower on this machine (measured, 1 thread).
public struct UniformStream: RandomNumberGenerator {
    @usableFromInline var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    /// Continues `generator`'s sequence.
    public init(_ generator: Xoshiro256) {
        s0 = generator.state[0]; s1 = generator.state[1]; s2 = generator.state[2]; s3 = generator.state[3]
    }

    @inlinable
    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }

    /// A uniform float in [0, 1) on the 2⁻²⁴ grid (the top 24 bits).
    @inlinable
    public mutating func nextUniform() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Fills `buffer` with uniform floats in [0, 1), two per 64-bit draw (as `Xoshiro256.fillUniform`).
    @inlinable
    public mutating func fillUniform(_ buffer: UnsafeMutableBufferPointer<Float>) {
        let n = buffer.count
        guard let p = buffer.baseAddress else { return }
        var i = 0
        while i &+ 1 < n {
            let w = next()
            p[i] = Float(UInt32(truncatingIfNeeded: w) >> 8) * 0x1p-24
            p[i &+ 1] = Float(w >> 40) * 0x1p-24
            i &+= 2
        }
        if i < n { p[i] = nextUniform() }
    }
}

extension CompressionKey {
    /// `workerGenerator` as a `UniformStream` (the same sequence, faster draws).
    @inlinable
    public func workerStream(seed: UInt64, purpose: UInt64 = 0) -> UniformStream {
        UniformStream(workerGenerator(seed: seed, purpose: purpose))
    }

    /// `sharedGenerator` as a `UniformStream`.
    @inlinable
    public func sharedStream(seed: UInt64, purpose: UInt64 = 0) -> UniformStream {
        UniformStream(sharedGenerator(seed: seed, purpose: purpose))
    }
}
