#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Philox-4×32-10, the counter-based generator of Salmon, Moraes, Dror and Shaw,
/// "Parallel random numbers: as easy as 1, 2, 3" (SC 2011).
///
/// A Philox value is a pure function of (key, counter): block `i` of stream
/// `s` under seed `k` is the same on every worker, thread and run, with no
/// state to share. That is what PowerSGD's initial Q and Random-K's indices
/// need (ALGORITHMS.md §1.3 and §5.4): every worker draws the identical matrix
/// for (seed, step, tensor) by naming it.
///
/// Layout: the 64-bit seed is the key; the 128-bit counter is
/// (block index: 64 bits, stream: 64 bits). `stream(_:)` folds several
/// identifiers (step, tensor index, purpose) into one stream number.
public struct Philox: Sendable, Hashable {
    public let seed: UInt64
    public let stream: UInt64

    public init(seed: UInt64, stream: UInt64 = 0) {
        self.seed = seed
        self.stream = stream
    }

    /// Folds identifiers into one stream number with the SplitMix64 finalizer, so
    /// (step 1, tensor 2) and (step 2, tensor 1) name different streams.
    public static func stream(_ parts: UInt64...) -> UInt64 {
        var h: UInt64 = 0x6A09_E667_F3BC_C909
        for p in parts { h = splitMix64(h ^ p) }
        return h
    }

    @inlinable
    static func splitMix64(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The raw Philox-4×32-10 bijection (exposed for the known-answer test).
    @inlinable
    public static func permute(counter: SIMD4<UInt32>, key: SIMD2<UInt32>) -> SIMD4<UInt32> {
        var c = counter
        var k = key
        for round in 0..<10 {
            if round > 0 { k &+= SIMD2(0x9E37_79B9, 0xBB67_AE85) }
            let p0 = UInt64(0xD251_1F53) &* UInt64(c[0])
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(c[2])
            c = SIMD4(UInt32(truncatingIfNeeded: p1 >> 32) ^ c[1] ^ k[0], UInt32(truncatingIfNeeded: p1),
                      UInt32(truncatingIfNeeded: p0 >> 32) ^ c[3] ^ k[1], UInt32(truncatingIfNeeded: p0))
        }
        return c
    }

    /// The four 32-bit words of block `index` of this stream.
    @inlinable
    public func block(_ index: UInt64) -> SIMD4<UInt32> {
        Philox.permute(
            counter: SIMD4(UInt32(truncatingIfNeeded: index), UInt32(truncatingIfNeeded: index >> 32),
                           UInt32(truncatingIfNeeded: stream), UInt32(truncatingIfNeeded: stream >> 32)),
            key: SIMD2(UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
    }

    /// Fills `buffer` with uniform floats in [0, 1): element `i` comes from word `i % 4` of block
    /// `i / 4`, so a prefix of a longer fill equals a shorter fill.
    public func fillUniform(_ buffer: UnsafeMutableBufferPointer<Float>) {
        let n = buffer.count
        var i = 0
        var blockIndex: UInt64 = 0
        while i < n {
            let words = block(blockIndex)
            for w in 0..<4 where i &+ w < n { buffer[i &+ w] = uniformFloat(words[w]) }
            i &+= 4
            blockIndex &+= 1
        }
    }

    /// Fills `buffer` with standard normal floats (times `standardDeviation`), by the Box–Muller
    /// transform of the two uniform pairs of each block: (w0, w1) and (w2, w3) each give two normals.
    public func fillNormal(_ buffer: UnsafeMutableBufferPointer<Float>, standardDeviation: Float = 1) {
        let n = buffer.count
        var i = 0
        var blockIndex: UInt64 = 0
        while i < n {
            let w = block(blockIndex)
            let (a, b) = boxMuller(w[0], w[1])
            let (c, d) = boxMuller(w[2], w[3])
            let values = SIMD4(a, b, c, d) * standardDeviation
            for k in 0..<4 where i &+ k < n { buffer[i &+ k] = values[k] }
            i &+= 4
            blockIndex &+= 1
        }
    }

    /// A tensor of standard normal values drawn from this stream.
    public func normalTensor(shape: [Int], standardDeviation: Float = 1) -> Tensor {
        var t = Tensor(shape: shape)
        t.withUnsafeMutableBufferPointer { fillNormal($0, standardDeviation: standardDeviation) }
        return t
    }
}

/// The top 24 bits of a word as a float in [0, 1): every value is exactly representable,
/// so the distribution is the uniform grid k·2⁻²⁴.
@inlinable
public func uniformFloat(_ word: UInt32) -> Float {
    Float(word >> 8) * 0x1p-24
}

/// Two independent N(0, 1) values from two uniform words. u₁ is taken in (0, 1] so log(u₁) is finite.
@inlinable
func boxMuller(_ w1: UInt32, _ w2: UInt32) -> (Float, Float) {
    let u1 = Double((w1 >> 8) &+ 1) * 0x1p-24
    let u2 = Double(w2 >> 8) * 0x1p-24
    let radius = (-2 * log(u1)).squareRoot()
    let angle = 2 * Double.pi * u2
    return (Float(radius * cos(angle)), Float(radius * sin(angle)))
}

/// xoshiro256** (Blackman and Vigna, 2018): a fast sequential generator for per-worker randomness
/// that need not agree across workers (QSGD's stochastic rounding, ATOMO's sampling, dropout masks).
///
/// Seeded from (seed, stream) through SplitMix64, as its authors recommend, so
/// streams for different workers or purposes are independent. Its state is four
/// words and is saved in checkpoints.
public struct Xoshiro256: RandomNumberGenerator, Sendable, Hashable, Codable {
    public var state: SIMD4<UInt64>

    public init(seed: UInt64, stream: UInt64 = 0) {
        var x = seed ^ Philox.splitMix64(stream)
        var s = SIMD4<UInt64>()
        for i in 0..<4 { x = x &+ 0x9E37_79B9_7F4A_7C15; s[i] = Philox.splitMix64(x) }
        if s == .zero { s[0] = 1 }
        state = s
    }

    @inlinable
    public mutating func next() -> UInt64 {
        let result = ((state[1] &* 5) << 7 | (state[1] &* 5) >> 57) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = state[3] << 45 | state[3] >> 19
        return result
    }

    /// A uniform float in [0, 1) on the 2⁻²⁴ grid.
    @inlinable
    public mutating func nextUniform() -> Float {
        Float(next() >> 40) * 0x1p-24
    }

    /// Fills `buffer` with uniform floats in [0, 1), two per 64-bit draw.
    @inlinable
    public mutating func fillUniform(_ buffer: UnsafeMutableBufferPointer<Float>) {
        let n = buffer.count
        var i = 0
        while i &+ 1 < n {
            let w = next()
            buffer[i] = Float(UInt32(truncatingIfNeeded: w) >> 8) * 0x1p-24
            buffer[i &+ 1] = Float(w >> 40) * 0x1p-24
            i &+= 2
        }
        if i < n { buffer[i] = nextUniform() }
    }

    /// A standard normal float (Box–Muller on one 64-bit draw; the second value is discarded).
    @inlinable
    public mutating func nextNormal() -> Float {
        let w = next()
        return boxMuller(UInt32(truncatingIfNeeded: w), UInt32(truncatingIfNeeded: w >> 32)).0
    }
}
