import LinearAlgebra

/// QSGD (Alistarh et al. 2017; ALGORITHMS.md §3): stochastic quantization to s levels per bucket.
///
/// For each bucket v of `bucketSize` consecutive elements with scale ‖v‖ (L2, the theory, or
/// max-norm, the paper's experiments), element i is sent as sgn(vᵢ)·ζᵢ with the integer level
/// ζᵢ = ⌊aᵢ⌋ + [U < aᵢ − ⌊aᵢ⌋], aᵢ = s·|vᵢ|/‖v‖ ∈ [0, s], and decoded as sgn(vᵢ)·‖v‖·ζᵢ/s.
/// E[ζᵢ] = aᵢ, so the decoded vector is unbiased (§3.1; the `U < frac` rule of §3.4).
/// A zero bucket has scale 0 and decodes to zeros (§3.4: Q(0) = 0).
///
/// Two wire formats (both start with the ⌈n/d⌉ bucket scales as fp32):
/// - `.fixedWidth`: every element as 1 sign bit + ⌈log₂(s+1)⌉ level bits, so a message is exactly
///   ⌈(32·⌈n/d⌉ + n·(1 + ⌈log₂(s+1)⌉)) / 8⌉ bytes (§3.2, §10).
/// - `.elias`: the paper's sparse stream: a 32-bit count of nonzeros first, then the scales, then
///   for each nonzero element in order Elias-gamma(gap to it; the first gap is its 1-based
///   position), its sign bit, Elias-gamma(ζᵢ) (§3.2; gamma is chosen in `EliasGamma`).
public struct QSGD: Compressor {
    public enum Scaling: String, Sendable { case l2, max }
    public enum Format: String, Sendable { case fixedWidth = "fixed", elias }

    /// s, the number of nonzero levels (1 ... 2²⁴).
    public let levels: Int
    /// d, the elements per bucket, each with its own scale.
    public let bucketSize: Int
    public let scaling: Scaling
    public let format: Format
    public let seed: UInt64

    public init(levels: Int, bucketSize: Int = 512, scaling: Scaling = .l2, format: Format = .elias, seed: UInt64 = 0) throws {
        guard (1...(1 << 24)).contains(levels) else {
            throw GradientCompressionError.invalidOption("qsgd: levels=\(levels) must be in 1...\(1 << 24)")
        }
        guard bucketSize >= 1 else {
            throw GradientCompressionError.invalidOption("qsgd: bucket=\(bucketSize) must be at least 1")
        }
        self.levels = levels
        self.bucketSize = bucketSize
        self.scaling = scaling
        self.format = format
        self.seed = seed
    }

    public var name: String { "qsgd(s=\(levels),d=\(bucketSize),\(scaling.rawValue),\(format.rawValue))" }

    /// ⌈log₂(s+1)⌉: the bits of one level in the fixed-width format.
    public var levelBits: Int { 64 - UInt64(levels).leadingZeroBitCount }

    func bucketCount(_ n: Int) -> Int { (n + bucketSize - 1) / bucketSize }

    public func fixedMessageBytes(shape: [Int]) -> Int? {
        guard format == .fixedWidth else { return nil }
        let n = Tensor.elementCount(shape)
        return (32 * bucketCount(n) + n * (1 + levelBits) + 7) / 8
    }

    public func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey) throws -> [UInt8] {
        let n = values.count
        let buckets = bucketCount(n)
        // 1. Bucket scales (a non-finite scale means a NaN/Inf input, or an L2 norm beyond fp32).
        var scales = [Float](repeating: 0, count: buckets)
        for b in 0..<buckets {
            let slice = UnsafeBufferPointer(rebasing: values[b * bucketSize ..< min(n, (b + 1) * bucketSize)])
            let scale = scaling == .l2 ? Vector.norm2(slice) : maximumMagnitude(slice)
            guard scale.isFinite else {
                throw CompressorError.nonFiniteInput(method: "qsgd", tensor: key.tensor,
                                                     detail: "bucket \(b) has a NaN/Inf element or an fp32-overflowing norm")
            }
            scales[b] = scale
        }
        // 2. Levels, bucket by bucket, written as they are drawn.
        var writer = BitWriter(expectedBits: format == .fixedWidth ? 32 * buckets + n * (1 + levelBits) : 32 + 32 * buckets + 4 * n)
        if format == .elias { writer.write(0, bits: 32) }  // the nonzero count, patched at the end
        for s in scales { writer.write(UInt64(s.bitPattern), bits: 32) }
        var generator = key.workerStream(seed: seed)
        // Plain locals and a raw scratch buffer: a closure capturing `writer` or `generator` would box
        // them and make every access in this loop a dynamic exclusivity check.
        let u = UnsafeMutableBufferPointer<Float>.allocate(capacity: Swift.max(1, Swift.min(n, bucketSize)))
        defer { u.deallocate() }
        var nonzeros = 0
        var lastPosition = -1
        let s = Float(levels), fieldBits = 1 + levelBits, levelBitsShift = UInt64(levelBits)
        let fixedWidth = format == .fixedWidth
        for b in 0..<buckets {
            let start = b &* bucketSize, end = Swift.min(n, start &+ bucketSize)
            let scale = scales[b]
            if scale == 0 {
                if fixedWidth { for _ in start..<end { writer.write(0, bits: fieldBits) } }
                continue
            }
            generator.fillUniform(UnsafeMutableBufferPointer(rebasing: u[0 ..< end &- start]))
            let factor = s / scale
            for i in start..<end {
                let x = values[i]
                let level = UInt64(Swift.min(roundStochastically(Swift.abs(x) * factor, u[i &- start]), s))
                let negative: UInt64 = x < 0 ? 1 : 0
                if fixedWidth {
                    writer.write(level | negative << levelBitsShift, bits: fieldBits)
                } else if level != 0 {
                    EliasGamma.write(UInt64(i &- lastPosition), to: &writer)
                    writer.write(negative, bits: 1)
                    EliasGamma.write(level, to: &writer)
                    lastPosition = i
                    nonzeros &+= 1
                }
            }
        }
        if format == .elias { writer.patchLeading32Bits(UInt32(nonzeros)) }
        return writer.finish()
    }

    public func decode(_ message: UnsafeRawBufferPointer, shape: [Int], key: CompressionKey, weight: Float,
                       accumulatingInto output: UnsafeMutableBufferPointer<Float>) throws {
        let n = output.count
        let buckets = bucketCount(n)
        if let expected = fixedMessageBytes(shape: shape) { try expectMessageBytes(message, expected, "QSGD", shape: shape) }
        var reader = BitReader(message, context: "QSGD")
        var nonzeros = 0
        if format == .elias {
            nonzeros = Int(try reader.read(bits: 32, "the nonzero count"))
            guard nonzeros <= n else {
                throw GradientCompressionError.corruptMessage("QSGD message claims \(nonzeros) nonzeros in a tensor of \(n) elements")
            }
        }
        // The decoded value of level ζ in bucket b is weight·scale_b/s·ζ.
        var units = [Float](repeating: 0, count: buckets)
        for b in 0..<buckets {
            let scale = try reader.readFloat("the scale of bucket \(b)")
            guard scale.isFinite, scale >= 0 else {
                throw GradientCompressionError.corruptMessage("QSGD bucket \(b) has scale \(scale)")
            }
            units[b] = weight * scale / Float(levels)
        }
        let maxLevel = UInt64(levels)
        if format == .fixedWidth {
            let fieldBits = 1 + levelBits, mask = (UInt64(1) << UInt64(levelBits)) - 1
            for b in 0..<buckets {
                let unit = units[b]
                for i in b * bucketSize ..< min(n, (b + 1) * bucketSize) {
                    let field = try reader.read(bits: fieldBits, "element \(i)")
                    let level = field & mask
                    guard level <= maxLevel else {
                        throw GradientCompressionError.corruptMessage("QSGD element \(i) has level \(level) > s = \(levels)")
                    }
                    let magnitude = unit * Float(level)
                    output[i] += field >> UInt64(levelBits) != 0 ? -magnitude : magnitude
                }
            }
        } else {
            var position = -1
            for j in 0..<nonzeros {
                let gap = try EliasGamma.read(from: &reader, "the gap before nonzero \(j)")
                guard gap < UInt64(n - position) else {
                    throw GradientCompressionError.corruptMessage("QSGD nonzero \(j) lies beyond the \(n) elements")
                }
                position += Int(gap)
                let negative = try reader.readBit("the sign of nonzero \(j)")
                let level = try EliasGamma.read(from: &reader, "the level of nonzero \(j)")
                guard level <= maxLevel else {
                    throw GradientCompressionError.corruptMessage("QSGD nonzero \(j) has level \(level) > s = \(levels)")
                }
                let magnitude = units[position / bucketSize] * Float(level)
                output[position] += negative ? -magnitude : magnitude
            }
        }
        try reader.expectEnd()
    }
}
