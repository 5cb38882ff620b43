#if arch(x86_64)
import _Builtin_intrinsics.intel
#endif

/// Eight independent xoshiro128+ generators (Blackman & Vigna 2018), one per lane of a
/// `SIMD8<UInt32>`, drawing eight uniform floats per step: the per-element draws of QSGD's and
/// TernGrad's stochastic rounding.
///
/// Why this generator: xoshiro128+'s step is shifts, xors, one rotate and one add on 32-bit lanes,
/// all SSE2 instructions (SSE2 has no 32-bit multiply, which xoshiro128** and counter-based
/// hashes need), so a step costs ~10 vector instructions per eight draws; the scalar
/// `UniformStream` with an int→float conversion per draw cost ~5 ns per element (measured, 1
/// thread). Its weakness, low linear complexity of the lowest bits, does not touch the draws:
/// only the top 23 bits are used. The eight lane states come from 16 draws of the scalar
/// `UniformStream` given at creation, so the draws stay a pure function of (seed, key).
///
/// **Uniforms on the 2⁻²³ grid:** the top 23 bits b of a lane's output become
/// Float(bitPattern: 0x3F80_0000 | b) − 1 = b·2⁻²³ ∈ [0, 1) exactly (a float in [1, 2) with
/// mantissa b, minus one, no rounding), with no integer→float conversion. With the rounding rule
/// `U < f` (ALGORITHMS.md §3.4), P(U < f) = ⌈f·2²³⌉/2²³: the bias is below 2⁻²³ of one level step.
public struct UniformLanes {
    @usableFromInline var s0: SIMD8<UInt32>, s1: SIMD8<UInt32>, s2: SIMD8<UInt32>, s3: SIMD8<UInt32>

    /// Seeds the eight lanes from `stream` (16 64-bit draws).
    public init(_ stream: inout UniformStream) {
        var words = [UInt32]()
        for _ in 0..<16 {
            let w = stream.next()
            words.append(UInt32(truncatingIfNeeded: w))
            words.append(UInt32(truncatingIfNeeded: w >> 32))
        }
        s0 = .zero; s1 = .zero; s2 = .zero; s3 = .zero
        for lane in 0..<8 {
            s0[lane] = words[4 * lane]; s1[lane] = words[4 * lane + 1]
            s2[lane] = words[4 * lane + 2]; s3[lane] = words[4 * lane + 3]
            // The all-zero state is xoshiro's one fixed point (probability 2⁻¹²⁸): replace it.
            if s0[lane] | s1[lane] | s2[lane] | s3[lane] == 0 { s0[lane] = 0x9E37_79B9 &+ UInt32(lane) }
        }
    }

    /// Eight uniforms in [0, 1) on the 2⁻²³ grid (lane i from generator i).
    @inlinable @inline(__always)
    public mutating func next() -> SIMD8<Float> {
        let result = s0 &+ s3
        let t = s1 &<< 9
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = UniformLanes.rotateLeft11(s3)
        let mantissa = (result &>> 9) | 0x3F80_0000
        return unsafeBitCast(mantissa, to: SIMD8<Float>.self) - 1
    }
}

extension UniformLanes {
    /// x rotated left by 11 bits per lane. Written with SSE2 intrinsics: LLVM recognizes the
    /// generic (x << 11) | (x >> 21) as a rotate, which the baseline target (no vector rotate)
    /// then scalarized into 8 extracts, 8 `rol` and 8 inserts (seen in the disassembly).
    @inlinable @inline(__always)
    static func rotateLeft11(_ x: SIMD8<UInt32>) -> SIMD8<UInt32> {
        #if arch(x86_64)
        let low = unsafeBitCast(x.lowHalf, to: SIMD2<Int64>.self), high = unsafeBitCast(x.highHalf, to: SIMD2<Int64>.self)
        return SIMD8(lowHalf: unsafeBitCast(_mm_or_si128(_mm_slli_epi32(low, 11), _mm_srli_epi32(low, 21)), to: SIMD4<UInt32>.self),
                     highHalf: unsafeBitCast(_mm_or_si128(_mm_slli_epi32(high, 11), _mm_srli_epi32(high, 21)), to: SIMD4<UInt32>.self))
        #else
        return (x &<< 11) | (x &>> 21)
        #endif
    }
}

extension UniformLanes {
    /// Runs `body` on the state as 32 words (s0's eight lanes, then s1's, s2's, s3's), the layout
    /// the C kernels of `CVectorKernels` advance, and keeps what `body` leaves there.
    mutating func withState<R>(_ body: (UnsafeMutablePointer<UInt32>) throws -> R) rethrows -> R {
        // On the stack: QSGD calls this once per bucket.
        try withUnsafeTemporaryAllocation(of: SIMD8<UInt32>.self, capacity: 4) { state in
            state[0] = s0; state[1] = s1; state[2] = s2; state[3] = s3
            let result = try state.withMemoryRebound(to: UInt32.self) { try body($0.baseAddress!) }
            s0 = state[0]; s1 = state[1]; s2 = state[2]; s3 = state[3]
            return result
        }
    }
}

extension CompressionKey {
    /// The per-worker eight-lane generator of this encoding (seeded from `workerStream`).
    public func workerLanes(seed: UInt64, purpose: UInt64 = 0) -> UniformLanes {
        var stream = workerStream(seed: seed, purpose: purpose)
        return UniformLanes(&stream)
    }
}
