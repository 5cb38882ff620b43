import LinearAlgebra

/// xoshiro256** (the generator of `LinearAlgebra.Xoshiro256`, same seeding, same output
/// sequence) with its state in four scalar words instead of a `SIMD4<UInt64>` (lane inserts and
/// extracts of the SIMD state made each draw ~3.7× slower on this machine, 1 thread). Random-K
/// draws its indices from it, and it seeds `UniformLanes`, the rounding draws of QSGD and TernGrad.
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
