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

    /// An upper bound on the Elias stream's bits: 32 + 32 per bucket, and per element at most
    /// 1.5 bits of gap code (γ(g) ≤ 1.5·g for every g ≥ 1 and the gaps sum to at most n), one sign
    /// bit and 2⌊log₂ s⌋ + 1 = 2·levelBits − 1 level bits: 2·levelBits + 2 per element suffices.
    func eliasBitBound(_ n: Int) -> Int { 32 + 32 * bucketCount(n) + n * (2 * levelBits + 2) }

    public func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey) throws -> [UInt8] {
        let n = values.count
        let buckets = bucketCount(n)
        let fixedWidth = format == .fixedWidth
        let header = fixedWidth ? 4 * buckets : 4 + 4 * buckets
        // Bucket scales go to the byte-aligned header, the level stream after it; the sink's
        // capacity is the format's exact size (fixed) or its proven bound (Elias), + 8 for its last store.
        // Sized from `values.count`, not from `shape`, so a caller's inconsistent shape cannot shrink it.
        let capacity = (fixedWidth ? (32 * buckets + n * (1 + levelBits) + 7) / 8 : (eliasBitBound(n) + 7) / 8) + 8
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
        defer { buffer.deallocate() }
        var sink = BitSink(buffer, startingAtByte: header)
        var generator = key.workerStream(seed: seed)
        // Per-bucket scratch: the uniforms, then each element's level with its sign in bit 31.
        let scratch = Swift.max(1, Swift.min(n, bucketSize))
        let u = UnsafeMutablePointer<Float>.allocate(capacity: scratch)
        let words = UnsafeMutablePointer<UInt32>.allocate(capacity: scratch)
        defer { u.deallocate(); words.deallocate() }
        // Elias codes of (sign, level) for levels up to 255, indexed by 2·level + sign: the level
        // code shifted above the sign bit, and the length in the low 8 bits (0 for level 0).
        let tableArray = EliasGamma.signedLevelTable(maximum: Swift.min(levels, 255))
        let tableLimit = UInt32(tableArray.count / 2 - 1)
        let table = UnsafeMutablePointer<UInt64>.allocate(capacity: tableArray.count)
        table.initialize(from: tableArray, count: tableArray.count)
        defer { table.deallocate() }
        var nonzeros = 0
        var lastPosition = -1
        let s = Float(levels), levelShift = UInt32(levelBits), fieldBits = 1 + levelBits
        guard let v = values.baseAddress else {
            return fixedWidth ? [] : [0, 0, 0, 0]
        }
        for b in 0..<buckets {
            let start = b &* bucketSize, count = Swift.min(n, start &+ bucketSize) &- start
            let bucket = UnsafeBufferPointer(start: v + start, count: count)
            // 1. The scale (a non-finite scale means a NaN/Inf input, or an L2 norm beyond fp32).
            let scale = scaling == .l2 ? Vector.norm2(bucket) : maximumMagnitude(bucket)
            guard scale.isFinite else {
                throw CompressorError.nonFiniteInput(method: "qsgd", tensor: key.tensor,
                                                     detail: "bucket \(b) has a NaN/Inf element or an fp32-overflowing norm")
            }
            (buffer + header - 4 * (buckets - b)).storeBytes(of: scale.bitPattern.littleEndian, as: UInt32.self)
            if scale == 0 {
                if fixedWidth { sink.appendZeros(count &* fieldBits) }
                continue
            }
            // 2. Levels (a branch-free loop the compiler vectorizes), then the bit stream.
            generator.fillUniform(UnsafeMutableBufferPointer(start: u, count: count))
            quantizeLevels(bucket, uniforms: u, factor: s / scale, into: words)
            if fixedWidth {
                for j in 0..<count {
                    let w = words[j]
                    sink.append(UInt64((w & 0x7FFF_FFFF) | (w &>> 31) &<< levelShift), bits: fieldBits)
                }
                continue
            }
            let coded = QSGD.appendEliasBucket(words, count: count, start: start, lastPosition: lastPosition,
                                               sink: sink, table: table, tableLimit: tableLimit)
            sink = coded.sink
            lastPosition = coded.lastPosition
            nonzeros &+= coded.nonzeros
        }
        precondition(sink.byteCount + 8 <= capacity, "QSGD: stream of \(sink.byteCount) bytes exceeds its bound")
        if !fixedWidth { buffer.storeBytes(of: UInt32(nonzeros).littleEndian, as: UInt32.self) }
        return [UInt8](UnsafeRawBufferPointer(start: buffer, count: sink.byteCount))
    }

    /// Appends the Elias stream of one bucket's level words (element `start` first) and returns the
    /// sink, the position of the last nonzero and the count of nonzeros. Its own function, taking and
    /// returning its state by value, so that the loop's dozen live values stay in registers (inlined
    /// in `encode`, a spilled counter's store-to-load chain cost ~10% of the time).
    ///
    /// Branch-free for the common case (a data-dependent `if level == 0` mispredicts often): a
    /// zero element appends 0 bits and keeps `lastPosition`.
    @inline(never)
    static func appendEliasBucket(_ words: UnsafePointer<UInt32>, count: Int, start: Int, lastPosition: Int, sink: BitSink,
                                  table: UnsafePointer<UInt64>, tableLimit: UInt32)
        -> (sink: BitSink, lastPosition: Int, nonzeros: Int) {
        var sink = sink, lastPosition = lastPosition, nonzeros = 0
        for j in 0..<count {
            let w = words[j], level = w & 0x7FFF_FFFF
            let i = start &+ j
            let gap = EliasGamma.field(UInt64(i &- lastPosition))
            let entry: UInt64  // (sign | γ(level) << 1) << 8 | its bits, as in the table
            if level <= tableLimit {
                entry = table[Int(truncatingIfNeeded: (w &<< 1) | (w &>> 31))]
            } else {
                let l = EliasGamma.field(UInt64(level))
                entry = (UInt64(w &>> 31) | l.code &<< 1) &<< 8 | UInt64(l.bits &+ 1)
            }
            let signedBits = Int(truncatingIfNeeded: entry & 255), total = gap.bits &+ signedBits
            let nonzero = level != 0
            if total <= 56 {
                let code = gap.code | (entry &>> 8) &<< UInt64(truncatingIfNeeded: gap.bits)
                sink.append(nonzero ? code : 0, bits: nonzero ? total : 0)
            } else if nonzero {
                sink.appendGamma(UInt64(i &- lastPosition))
                sink.append(entry &>> 8, bits: signedBits)
            }
            lastPosition = nonzero ? i : lastPosition
            nonzeros &+= nonzero ? 1 : 0
        }
        return (sink, lastPosition, nonzeros)
    }

    /// ζᵢ = ⌊aᵢ⌋ + [Uᵢ < aᵢ − ⌊aᵢ⌋], aᵢ = min(|vᵢ|·factor, s), clamped to s, written as ζᵢ | sign << 31.
    ///
    /// Float → integer conversions in Swift are checked and keep this loop scalar (measured 4×
    /// slower), so ⌊a⌋ and ζ's integer bits use the 2²³ trick instead: for 0 ≤ a < 2²³,
    /// (a + 2²³) − 2²³ is a rounded to an integer (minus one if that rounded up gives ⌊a⌋), and the
    /// low 23 bits of the float ζ + 2²³ are ζ. Floats from 2²³ to 2²⁴ (levels s ≥ 2²³) are integers
    /// already: ⌊a⌋ = a, and ζ is the mantissa with its implicit bit (2²⁴ has exponent 24).
    @inlinable
    func quantizeLevels(_ bucket: UnsafeBufferPointer<Float>, uniforms u: UnsafeMutablePointer<Float>, factor: Float,
                        into words: UnsafeMutablePointer<UInt32>) {
        let s = Float(levels)
        guard let v = bucket.baseAddress else { return }
        for j in 0..<bucket.count {
            let x = v[j]
            var a = Swift.abs(x) * factor
            a = a < s ? a : s
            let rounded = (a + 0x1p23) - 0x1p23
            let lower = a >= 0x1p23 ? a : (rounded > a ? rounded - 1 : rounded)
            var level = u[j] < a - lower ? lower + 1 : lower
            level = level < s ? level : s
            let small = (level + 0x1p23).bitPattern & 0x7F_FFFF
            let large = level == 0x1p24 ? 1 << 24 : (level.bitPattern & 0x7F_FFFF) | 0x80_0000
            // `x < 0`, not the sign bit: −0 is sent as +0 (the fixed-width format writes the sign of zeros).
            words[j] = (level >= 0x1p23 ? large : small) | (x < 0 ? 0x8000_0000 : 0)
        }
    }

    public func decode(_ message: UnsafeRawBufferPointer, shape: [Int], key: CompressionKey, weight: Float,
                       accumulatingInto output: UnsafeMutableBufferPointer<Float>) throws {
        let n = output.count
        let buckets = bucketCount(n)
        if let expected = fixedMessageBytes(shape: shape) { try expectMessageBytes(message, expected, "QSGD", shape: shape) }
        var reader = ByteReader(message, context: "QSGD")
        var nonzeros = 0
        if format == .elias {
            nonzeros = Int(try reader.readUInt32("the nonzero count"))
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
        let bits = BitSource(message, context: "QSGD")
        var p = 8 * reader.offset  // the bit position, a local so that it stays in a register
        let maxLevel = UInt64(levels)
        guard let out = output.baseAddress else { try bits.expectEnd(at: p); return }
        // No closure here: a captured `bits` would be boxed and every read dynamically exclusivity-checked.
            if format == .fixedWidth {
                let fieldBits = 1 + levelBits, mask = (UInt64(1) << UInt64(levelBits)) - 1, shift = UInt64(levelBits)
                for b in 0..<buckets {
                    let unit = units[b]
                    for i in b &* bucketSize ..< Swift.min(n, (b &+ 1) &* bucketSize) {
                        let field = try bits.field(fieldBits, at: p, "element \(i)")
                        p &+= fieldBits
                        let level = field & mask
                        guard level <= maxLevel else {
                            throw GradientCompressionError.corruptMessage("QSGD element \(i) has level \(level) > s = \(levels)")
                        }
                        let magnitude = unit * Float(UInt32(truncatingIfNeeded: level))
                        out[i] += field &>> shift != 0 ? -magnitude : magnitude
                    }
                }
            } else {
                var position = -1
                // The bucket of `position`, advanced as positions grow (no division per element).
                var bucket = 0, bucketEnd = bucketSize
                for j in 0..<nonzeros {
                    let (gap, gapBits) = try bits.gamma(at: p, "the gap before nonzero \(j)")
                    p &+= gapBits
                    guard gap < UInt64(n &- position) else {
                        throw GradientCompressionError.corruptMessage("QSGD nonzero \(j) lies beyond the \(n) elements")
                    }
                    position &+= Int(truncatingIfNeeded: gap)
                    let negative = try bits.field(1, at: p, "the sign of nonzero \(j)") != 0
                    let (level, levelBits) = try bits.gamma(at: p &+ 1, "the level of nonzero \(j)")
                    p &+= 1 &+ levelBits
                    guard level <= maxLevel else {
                        throw GradientCompressionError.corruptMessage("QSGD nonzero \(j) has level \(level) > s = \(levels)")
                    }
                    while position >= bucketEnd { bucket &+= 1; bucketEnd &+= bucketSize }
                    let magnitude = units[bucket] * Float(UInt32(truncatingIfNeeded: level))
                    out[position] += negative ? -magnitude : magnitude
                }
            }
        try bits.expectEnd(at: p)
    }
}
