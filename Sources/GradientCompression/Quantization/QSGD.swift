import CVectorKernels
import LinearAlgebra

/// QSGD (Alistarh et al. 2017; ALGORITHMS.md §3): stochastic quantization to s levels per bucket.
///
/// For each bucket v of `bucketSize` consecutive elements with scale ‖v‖ (L2, the theory, or
/// max-norm, the paper's experiments), element i is sent as sgn(vᵢ)·ζᵢ with the integer level
/// ζᵢ = ⌊aᵢ⌋ + [U < aᵢ − ⌊aᵢ⌋], aᵢ = s·|vᵢ|/‖v‖ ∈ [0, s], and decoded as sgn(vᵢ)·‖v‖·ζᵢ/s.
/// E[ζᵢ] = aᵢ, so the decoded vector is unbiased (§3.1; the `U < frac` rule of §3.4).
/// A zero bucket has scale 0 and decodes to zeros (§3.4: Q(0) = 0).
///
/// Tiny buckets (scale below 2⁻⁶⁰, `smallScale`) are quantized on the bucket times 2¹⁰⁰: for them
/// s/‖v‖ can overflow fp32 (max-norm: ‖v‖ < s·2⁻¹²⁸, e.g. a subnormal maximum; 0·∞ would then make
/// NaN levels), and L2's squares underflow (the norm of a subnormal bucket comes out 0 or short).
/// Scaled, every value lies in [2⁻⁴⁹, 2⁴⁰) or is 0: the product by a power of two is exact, every
/// square is a normal float and their sum cannot overflow (d < 2⁴⁸), so the levels are those of
/// aᵢ = s·|vᵢ|/‖v‖ as for any bucket; the scale sent is ‖2¹⁰⁰v‖·2⁻¹⁰⁰ rounded to fp32 (exact for
/// max-norm) and the levels are drawn against it. The decoder applies the same power of two to
/// its unit and undoes it after multiplying by the level, so a decoded value is rounded once, to
/// fp32's subnormal grid (2⁻¹⁴⁹), rather than through a subnormal unit ‖v‖/s.
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

    public var name: String {
        ReducerSpecification.reducerName("qsgd", [("levels", "\(levels)"), ("bucket", "\(bucketSize)"),
                                                  ("norm", scaling.rawValue), ("format", format.rawValue)])
    }

    /// ⌈log₂(s+1)⌉: the bits of one level in the fixed-width format.
    public var levelBits: Int { 64 - UInt64(levels).leadingZeroBitCount }

    func bucketCount(_ n: Int) -> Int { (n + bucketSize - 1) / bucketSize }

    public func fixedMessageBytes(shape: [Int]) -> Int? {
        guard format == .fixedWidth else { return nil }
        let n = Tensor.elementCount(shape)
        return (32 * bucketCount(n) + n * (1 + levelBits) + 7) / 8
    }

    /// An upper bound on the bits of one Elias stream covering `elements` elements: per element at
    /// most 1.5 bits of gap code (γ(g) ≤ 1.5·g for every g ≥ 1 and the gaps sum to at most the
    /// elements), one sign bit and 2⌊log₂ s⌋ + 1 = 2·levelBits − 1 level bits: 2·levelBits + 2.
    func eliasBitBound(_ elements: Int) -> Int { elements * (2 * levelBits + 2) }

    /// The elements of Elias stream k (0 or 1): those of the buckets b with b % 2 = k.
    func streamElements(_ k: Int, _ n: Int) -> Int {
        let buckets = bucketCount(n)
        guard buckets > k else { return 0 }
        let mine = (buckets - k + 1) / 2  // buckets k, k + 2, ...
        let lastIsMine = (buckets - 1) % 2 == k
        return mine * bucketSize - (lastIsMine ? buckets * bucketSize - n : 0)
    }

    public func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey) throws -> [UInt8] {
        format == .fixedWidth ? try encodeFixedWidth(values, key: key) : try encodeElias(values, key: key, kernel: .preferred)
    }

    /// Bucket b's scale, and its level words in `words` (all zero for a zero bucket): the elements'
    /// count and how many levels are nonzero. Throws on a non-finite scale (a NaN/Inf input, or an
    /// L2 norm beyond fp32).
    @inline(__always)
    func quantizeBucket(_ b: Int, _ v: UnsafePointer<Float>, _ n: Int, lanes: inout UniformLanes, key: CompressionKey,
                        into words: UnsafeMutablePointer<UInt32>, kernel: KernelPath = .preferred) throws -> (scale: Float, count: Int, nonzeros: Int) {
        let start = b &* bucketSize, count = Swift.min(n, start &+ bucketSize) &- start
        let bucket = UnsafeBufferPointer(start: v + start, count: count)
        let scale = scaling == .l2 ? Vector.norm2(bucket) : maximumMagnitude(bucket)
        guard scale.isFinite else {
            throw CompressorError.nonFiniteInput(method: "qsgd", tensor: key.tensor,
                                                 detail: "bucket \(b) has a NaN/Inf element or an fp32-overflowing norm")
        }
        if scale < QSGD.smallScale {
            // A zero bucket draws no uniforms. An L2 norm of 0 may be underflow: zero only if the maximum is.
            if scale == 0, scaling == .max || maximumMagnitude(bucket) == 0 {
                words.initialize(repeating: 0, count: count)
                return (0, count, 0)
            }
            return quantizeSmallBucket(bucket, lanes: &lanes, into: words, kernel: kernel)
        }
        return (scale, count, quantizeLevels(bucket, lanes: &lanes, factor: Float(levels) / scale, into: words, kernel: kernel))
    }

    /// Scales below this take `quantizeSmallBucket` (see the type's documentation): above it
    /// s/scale ≤ 2⁸⁴, and an L2 bucket's largest squares are normal floats.
    @usableFromInline static let smallScale: Float = 0x1p-60
    /// The power of two by which a small bucket is scaled before quantizing (and the decoder's
    /// unit for it), and its inverse.
    @usableFromInline static let smallScaleFactor: Float = 0x1p100
    @usableFromInline static let smallScaleUndo: Float = 0x1p-100

    /// A nonzero bucket of scale below `smallScale`: quantized as 2¹⁰⁰·v, its scale sent as
    /// fp32(‖2¹⁰⁰v‖·2⁻¹⁰⁰) (≥ max|vᵢ|, since rounding is monotone; > 0), with the factor
    /// s/(sent·2¹⁰⁰) (sent·2¹⁰⁰ is exact).
    @inline(never)
    func quantizeSmallBucket(_ bucket: UnsafeBufferPointer<Float>, lanes: inout UniformLanes,
                             into words: UnsafeMutablePointer<UInt32>, kernel: KernelPath) -> (scale: Float, count: Int, nonzeros: Int) {
        let scaled = bucket.map { $0 * QSGD.smallScaleFactor }
        let scaledScale = scaled.withUnsafeBufferPointer { scaling == .l2 ? Vector.norm2($0) : maximumMagnitude($0) }
        let sent = scaledScale * QSGD.smallScaleUndo
        let nonzeros = scaled.withUnsafeBufferPointer {
            quantizeLevels($0, lanes: &lanes, factor: Float(levels) / (sent * QSGD.smallScaleFactor), into: words, kernel: kernel)
        }
        return (sent, bucket.count, nonzeros)
    }

    func encodeFixedWidth(_ values: UnsafeBufferPointer<Float>, key: CompressionKey) throws -> [UInt8] {
        let n = values.count, buckets = bucketCount(n), header = 4 * buckets
        guard let v = values.baseAddress else { return [] }
        // Scales in the byte-aligned header, the fields after it; the capacity is the format's exact
        // size + 8 for the sink's last store (from `values.count`, so a wrong `shape` cannot shrink it).
        let capacity = (32 * buckets + n * (1 + levelBits) + 7) / 8 + 8
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
        defer { buffer.deallocate() }
        var sink = BitSink(buffer, startingAtByte: header)
        var lanes = key.workerLanes(seed: seed)
        let words = UnsafeMutablePointer<UInt32>.allocate(capacity: Swift.min(n, bucketSize))
        defer { words.deallocate() }
        let levelShift = UInt32(levelBits), fieldBits = 1 + levelBits
        for b in 0..<buckets {
            let q = try quantizeBucket(b, v, n, lanes: &lanes, key: key, into: words)
            (buffer + 4 * b).storeBytes(of: q.scale.bitPattern.littleEndian, as: UInt32.self)
            for j in 0..<q.count {
                let w = words[j]
                sink.append(UInt64((w & 0x7FFF_FFFF) | (w &>> 31) &<< levelShift), bits: fieldBits)
            }
        }
        precondition(sink.byteCount + 8 <= capacity, "QSGD: stream of \(sink.byteCount) bytes exceeds its size")
        return [UInt8](UnsafeRawBufferPointer(start: buffer, count: sink.byteCount))
    }

    /// The Elias format: two independent streams, stream k holding the buckets b with b % 2 = k,
    /// written in lockstep (buckets 2g and 2g + 1 together) so that the two serial bit-position
    /// chains overlap in the CPU, and decoded the same way. On AVX2 the codes of a bucket are
    /// written by `qsgd_elias_append_avx2` (eight at a time, the same bits), below 2³⁰ elements.
    func encodeElias(_ values: UnsafeBufferPointer<Float>, key: CompressionKey, kernel: KernelPath) throws -> [UInt8] {
        let n = values.count, buckets = bucketCount(n)
        guard let v = values.baseAddress else { return [UInt8](repeating: 0, count: 12) }
        let d = Swift.min(n, bucketSize)
        // Stream k's region: its proven bound + 8 bytes for the sink's last store.
        let capacity0 = (eliasBitBound(streamElements(0, n)) + 7) / 8 + 8
        let capacity1 = (eliasBitBound(streamElements(1, n)) + 7) / 8 + 8
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity0 + capacity1, alignment: 8)
        defer { buffer.deallocate() }
        var lanes = key.workerLanes(seed: seed)
        // The level words of one bucket.
        let words = UnsafeMutablePointer<UInt32>.allocate(capacity: d)
        defer { words.deallocate() }
        var scales = [Float](repeating: 0, count: buckets)
        // Elias codes of (sign, level) for levels up to 255, indexed by 2·level + sign: the level
        // code shifted above the sign bit, and the length in the low 8 bits (0 for level 0).
        let tableArray = EliasGamma.signedLevelTable(maximum: Swift.min(levels, 255))
        let tableLimit = UInt32(tableArray.count / 2 - 1)
        let table = UnsafeMutablePointer<UInt64>.allocate(capacity: tableArray.count)
        table.initialize(from: tableArray, count: tableArray.count)
        defer { table.deallocate() }
        // Both streams write through `buffer`; stream 1's bit positions start at its region.
        var streams = [EliasStreamState(stream: PositionedBits(bit: 0), last: -1),
                       EliasStreamState(stream: PositionedBits(bit: 8 * capacity0), last: -1)]
        var nonzeros = [0, 0]
        let vector = kernel == .avx2 && n <= 1 << 30
        let bytes = buffer.assumingMemoryBound(to: UInt8.self)
        for b in 0..<buckets {
            let q = try quantizeBucket(b, v, n, lanes: &lanes, key: key, into: words, kernel: kernel)
            scales[b] = q.scale
            let k = b & 1
            nonzeros[k] &+= q.nonzeros
            if vector {
                var c = qsgd_elias_stream(bit: Int64(streams[k].stream.bit), pending: streams[k].stream.pending,
                                          last: Int64(streams[k].last))
                _ = qsgd_elias_append_avx2(words, q.count, Int64((b &>> 1) &* bucketSize), &c, bytes)
                var stream = PositionedBits(bit: Int(c.bit))
                stream.pending = c.pending
                streams[k] = EliasStreamState(stream: stream, last: Int(c.last))
            } else if q.nonzeros &* 8 < q.count {
                streams[k] = QSGD.appendSparseEliasBucket(words, count: q.count, start: (b &>> 1) &* bucketSize, state: streams[k],
                                                          into: buffer, table: table, tableLimit: tableLimit)
            } else {
                streams[k] = QSGD.appendEliasBucket(words, count: q.count, start: (b &>> 1) &* bucketSize, state: streams[k],
                                                    into: buffer, table: table, tableLimit: tableLimit)
            }
        }
        let state = (stream0: streams[0].stream, stream1: streams[1].stream)
        let nonzeros0 = nonzeros[0], nonzeros1 = nonzeros[1]
        let bytes0 = state.stream0.byteCount, bytes1 = state.stream1.byteCount - capacity0
        precondition(bytes0 + 8 <= capacity0 && bytes1 + 8 <= capacity1, "QSGD: an Elias stream exceeds its bound")
        let header = 12 + 4 * buckets, total = header + bytes0 + bytes1
        return [UInt8](unsafeUninitializedCapacity: total) { out, count in
            let raw = UnsafeMutableRawPointer(out.baseAddress!)
            raw.storeBytes(of: UInt32(nonzeros0).littleEndian, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: UInt32(nonzeros1).littleEndian, toByteOffset: 4, as: UInt32.self)
            raw.storeBytes(of: UInt32(bytes0).littleEndian, toByteOffset: 8, as: UInt32.self)
            for b in 0..<buckets { raw.storeBytes(of: scales[b].bitPattern.littleEndian, toByteOffset: 12 + 4 * b, as: UInt32.self) }
            (raw + header).copyMemory(from: buffer, byteCount: bytes0)
            (raw + header + bytes0).copyMemory(from: buffer + capacity0, byteCount: bytes1)
            count = total
        }
    }

    /// One Elias stream's writer and the stream position of its last nonzero.
    @usableFromInline
    struct EliasStreamState {
        var stream: PositionedBits
        var last: Int
    }

    /// Appends the Elias codes of one bucket's level words (element j at stream position
    /// `start + j`), two elements per append: the pair's codes are joined in a register first (the
    /// serial bit-position chain then has one step per two elements). Its own function, taking and
    /// returning its state by value, so that the loop's live values stay in registers (two streams
    /// written in lockstep spilled their state to the stack: seen in the disassembly).
    @inline(never)
    static func appendEliasBucket(_ words: UnsafePointer<UInt32>, count: Int, start: Int, state: EliasStreamState,
                                  into base: UnsafeMutableRawPointer, table: UnsafePointer<UInt64>, tableLimit: UInt32) -> EliasStreamState {
        var stream = state.stream, last = state.last
        var j = 0
        while j &+ 2 <= count {
            let i = start &+ j
            let a = elementCode(words[j], at: i, last: last, table: table, tableLimit: tableLimit)
            let lastA = a.bits != 0 ? i : last
            let b = elementCode(words[j &+ 1], at: i &+ 1, last: lastA, table: table, tableLimit: tableLimit)
            let total = a.bits &+ b.bits
            if total <= 56 {
                stream.append(a.code | b.code &<< UInt64(truncatingIfNeeded: a.bits), bits: total, base)
                last = b.bits != 0 ? i &+ 1 : lastA
            } else {
                (stream, last) = appendPairSeparately(words + j, at: i, last: last, stream: stream, base, table: table, tableLimit: tableLimit)
            }
            j &+= 2
        }
        if j < count {
            appendElias(words[j], at: start &+ j, last: &last, stream: &stream, base, table: table, tableLimit: tableLimit)
        }
        return EliasStreamState(stream: stream, last: last)
    }

    /// The rare pair whose codes do not fit one append, element by element; out of line so that the
    /// dense loop keeps its state in registers.
    @inline(never)
    static func appendPairSeparately(_ words: UnsafePointer<UInt32>, at i: Int, last: Int, stream: PositionedBits,
                                     _ base: UnsafeMutableRawPointer, table: UnsafePointer<UInt64>, tableLimit: UInt32) -> (PositionedBits, Int) {
        var stream = stream, last = last
        appendElias(words[0], at: i, last: &last, stream: &stream, base, table: table, tableLimit: tableLimit)
        appendElias(words[1], at: i &+ 1, last: &last, stream: &stream, base, table: table, tableLimit: tableLimit)
        return (stream, last)
    }

    /// `appendEliasBucket` for a bucket with few nonzeros (under one in eight, e.g. s = 1): eight
    /// level words at a time become an 8-bit mask of the nonzero ones, and only those are coded
    /// (the dense loop spends ~25 instructions on every zero to append nothing).
    @inline(never)
    static func appendSparseEliasBucket(_ words: UnsafePointer<UInt32>, count: Int, start: Int, state: EliasStreamState,
                                        into base: UnsafeMutableRawPointer, table: UnsafePointer<UInt64>, tableLimit: UInt32) -> EliasStreamState {
        var stream = state.stream, last = state.last
        let weights = SIMD8<UInt32>(1, 2, 4, 8, 16, 32, 64, 128)
        var j = 0
        while j &+ 8 <= count {
            let w = UnsafeRawPointer(words + j).loadUnaligned(as: SIMD8<UInt32>.self)
            var mask = laneUnion((SIMD8<UInt32>(repeating: 0) &- isNonzero(w)) & weights)
            while mask != 0 {
                let t = mask.trailingZeroBitCount
                appendElias(words[j &+ t], at: start &+ j &+ t, last: &last, stream: &stream, base, table: table, tableLimit: tableLimit)
                mask &= mask &- 1
            }
            j &+= 8
        }
        while j < count {
            appendElias(words[j], at: start &+ j, last: &last, stream: &stream, base, table: table, tableLimit: tableLimit)
            j &+= 1
        }
        return EliasStreamState(stream: stream, last: last)
    }

    /// (sign | γ(level) << 1) << 8 | its bit count: the sign and level code of level word `w` as
    /// one field, from the table for levels up to `tableLimit`, computed above.
    @inline(__always)
    static func signedLevelEntry(_ w: UInt32, level: UInt32, table: UnsafePointer<UInt64>, tableLimit: UInt32) -> UInt64 {
        if level <= tableLimit { return table[Int(truncatingIfNeeded: (w &<< 1) | (w &>> 31))] }
        let l = EliasGamma.field(UInt64(level))
        return (UInt64(w &>> 31) | l.code &<< 1) &<< 8 | UInt64(l.bits &+ 1)
    }

    /// γ(gap), the sign and γ(level) of a nonzero element as one field of at most 56 bits, (0, 0) for
    /// a zero element, and bits > 56 for a field too long for one append (the caller then appends
    /// the element with `appendElias`). Branch-free for the common case.
    @inline(__always)
    static func elementCode(_ w: UInt32, at i: Int, last: Int, table: UnsafePointer<UInt64>, tableLimit: UInt32) -> (code: UInt64, bits: Int) {
        let level = w & 0x7FFF_FFFF
        let gap = EliasGamma.field(UInt64(truncatingIfNeeded: i &- last))
        let entry = signedLevelEntry(w, level: level, table: table, tableLimit: tableLimit)
        let total = gap.bits &+ Int(truncatingIfNeeded: entry & 255)
        let nonzero = level != 0
        // A long field's code is unused (the caller re-encodes the element), so its shift may wrap.
        let code = gap.code | (entry &>> 8) &<< UInt64(truncatingIfNeeded: gap.bits)
        return (nonzero ? code : 0, nonzero ? total : 0)
    }

    /// Appends one element's γ(gap), sign and γ(level) when its level is nonzero, nothing otherwise.
    ///
    /// Branch-free for the common case (a data-dependent `if level == 0` mispredicts often): a
    /// zero element appends 0 bits and keeps `last`.
    @inline(__always)
    static func appendElias(_ w: UInt32, at i: Int, last: inout Int, stream: inout PositionedBits, _ base: UnsafeMutableRawPointer,
                            table: UnsafePointer<UInt64>, tableLimit: UInt32) {
        let level = w & 0x7FFF_FFFF
        let gap = EliasGamma.field(UInt64(truncatingIfNeeded: i &- last))
        let entry = signedLevelEntry(w, level: level, table: table, tableLimit: tableLimit)
        let signedBits = Int(truncatingIfNeeded: entry & 255), total = gap.bits &+ signedBits
        let nonzero = level != 0
        if total <= 56 {
            let code = gap.code | (entry &>> 8) &<< UInt64(truncatingIfNeeded: gap.bits)
            stream.append(nonzero ? code : 0, bits: nonzero ? total : 0, base)
        } else if nonzero {
            var sink = stream.sink(base)
            sink.appendGamma(UInt64(truncatingIfNeeded: i &- last))
            sink.append(entry &>> 8, bits: signedBits)
            stream = PositionedBits(sink)
        }
        last = nonzero ? i : last
    }

    /// ζᵢ = ⌊aᵢ⌋ + [Uᵢ < aᵢ − ⌊aᵢ⌋], aᵢ = min(|vᵢ|·factor, s), clamped to s, written as ζᵢ | sign << 31,
    /// eight elements per step with their eight uniforms drawn in the same step (no uniform array).
    /// A bucket draws ⌈count/8⌉ steps of `lanes`; the draws of a tail beyond the bucket are unused.
    ///
    /// Float → integer conversions in Swift are checked and keep a loop scalar (measured 4×
    /// slower), so ⌊a⌋ and ζ's integer bits use the 2²³ trick instead: for 0 ≤ a < 2²³,
    /// (a + 2²³) − 2²³ is a rounded to an integer (minus one if that rounded up gives ⌊a⌋), and the
    /// low 23 bits of the float ζ + 2²³ are ζ. Floats from 2²³ to 2²⁴ (levels s ≥ 2²³) are integers
    /// already: ⌊a⌋ = a, and ζ is the mantissa with its implicit bit (2²⁴ has exponent 24).
    /// Returns the count of nonzero levels. On AVX2, for s < 2²³, `qsgd_levels_avx2` does the same
    /// arithmetic eight lanes to a register (the portable SIMD8 is two SSE registers, and its
    /// selects are and/andnot/or triples).
    func quantizeLevels(_ bucket: UnsafeBufferPointer<Float>, lanes: inout UniformLanes, factor: Float,
                        into words: UnsafeMutablePointer<UInt32>, kernel: KernelPath = .preferred) -> Int {
        guard let v = bucket.baseAddress else { return 0 }
        let count = bucket.count
        if kernel == .avx2 && levels < 1 << 23 {
            return lanes.withState { qsgd_levels_avx2(v, count, $0, factor, Float(levels), words) }
        }
        var j = 0
        var nonzeros = SIMD8<UInt32>(repeating: 0)
        // The same loop twice, with `wide` a constant in each, on purpose: written once as a local
        // function over `wide`, its captured counters stayed in memory and QSGD encode took ~15%
        // longer (106 vs 90–94 ms for s = 64, measured 2026-11-23).
        if levels < 1 << 23 {
            while j &+ 8 <= count {
                let x = UnsafeRawPointer(v + j).loadUnaligned(as: SIMD8<Float>.self)
                let w = levelWords(x, lanes.next(), factor, wide: false)
                UnsafeMutableRawPointer(words + j).storeBytes(of: w, as: SIMD8<UInt32>.self)
                nonzeros &+= QSGD.isNonzero(w)
                j &+= 8
            }
        } else {
            while j &+ 8 <= count {
                let x = UnsafeRawPointer(v + j).loadUnaligned(as: SIMD8<Float>.self)
                let w = levelWords(x, lanes.next(), factor, wide: true)
                UnsafeMutableRawPointer(words + j).storeBytes(of: w, as: SIMD8<UInt32>.self)
                nonzeros &+= QSGD.isNonzero(w)
                j &+= 8
            }
        }
        if j < count {
            // The tail: zero padding quantizes to level 0 (a = 0 and U < 0 never holds).
            var x = SIMD8<Float>(repeating: 0)
            for k in 0 ..< count &- j { x[k] = v[j &+ k] }
            let w = levelWords(x, lanes.next(), factor, wide: levels >= 1 << 23)
            for k in 0 ..< count &- j { words[j &+ k] = w[k] }
            nonzeros &+= QSGD.isNonzero(w)
        }
        return Int(nonzeros.wrappedSum())
    }

    /// 1 in the lanes whose level is nonzero, else 0: (ζ + 2³¹ − 1) >> 31 for ζ ≤ 2²⁴ (integer
    /// arithmetic: an integer `.==` mask was built lane by lane through memory, 10× slower).
    @inlinable @inline(__always)
    static func isNonzero(_ w: SIMD8<UInt32>) -> SIMD8<UInt32> { ((w & 0x7FFF_FFFF) &+ 0x7FFF_FFFF) &>> 31 }

    /// The level words of eight elements `x` with their uniforms `u` (see `quantizeLevels`);
    /// `wide` handles levels of 2²³ and more.
    @inlinable @inline(__always)
    func levelWords(_ x: SIMD8<Float>, _ u: SIMD8<Float>, _ factor: Float, wide: Bool) -> SIMD8<UInt32> {
        let s = SIMD8<Float>(repeating: Float(levels)), big = SIMD8<Float>(repeating: 0x1p23)
        let bits = unsafeBitCast(x, to: SIMD8<UInt32>.self)
        var a = unsafeBitCast(bits & 0x7FFF_FFFF, to: SIMD8<Float>.self) * factor
        a.replace(with: s, where: a .> s)
        let rounded = (a + big) - big
        var lower = rounded.replacing(with: rounded - 1, where: rounded .> a)
        if wide { lower.replace(with: a, where: a .>= big) }
        var level = lower.replacing(with: lower + 1, where: u .< a - lower)
        level.replace(with: s, where: level .> s)
        var word = unsafeBitCast(level + big, to: SIMD8<UInt32>.self) & 0x7F_FFFF
        if wide {
            var large = (unsafeBitCast(level, to: SIMD8<UInt32>.self) & 0x7F_FFFF) | 0x80_0000
            large.replace(with: 1 << 24, where: level .== 0x1p24)
            word.replace(with: large, where: level .>= big)
        }
        // `x < 0`, not the sign bit: −0 is sent as +0 (the fixed-width format writes the sign of zeros).
        word.replace(with: word | 0x8000_0000, where: x .< 0)
        return word
    }

    public func decode(_ message: UnsafeRawBufferPointer, shape: [Int], key: CompressionKey, weight: Float,
                       accumulatingInto output: UnsafeMutableBufferPointer<Float>) throws {
        let n = output.count
        let buckets = bucketCount(n)
        if let expected = fixedMessageBytes(shape: shape) { try expectMessageBytes(message, expected, "QSGD", shape: shape) }
        var reader = ByteReader(message, context: "QSGD")
        var nonzeros = (0, 0), bytes0 = 0
        if format == .elias {
            nonzeros = (Int(try reader.readUInt32("the nonzero count of stream 0")), Int(try reader.readUInt32("the nonzero count of stream 1")))
            bytes0 = Int(try reader.readUInt32("the byte length of stream 0"))
            for (k, count) in [nonzeros.0, nonzeros.1].enumerated() where count > streamElements(k, n) {
                throw GradientCompressionError.corruptMessage(
                    "QSGD message claims \(count) nonzeros in stream \(k) of \(streamElements(k, n)) elements")
            }
        }
        // The decoded value of level ζ in bucket b is weight·scale_b/s·ζ: (unit_b·ζ)·undo_b, where a
        // small scale's unit is scaled by 2¹⁰⁰ and undo_b = 2⁻¹⁰⁰ (see the type's documentation), else 1.
        var units = [Float](repeating: 0, count: 2 * buckets)
        for b in 0..<buckets {
            let scale = try reader.readFloat("the scale of bucket \(b)")
            guard scale.isFinite, scale >= 0 else {
                throw GradientCompressionError.corruptMessage("QSGD bucket \(b) has scale \(scale)")
            }
            let small = scale < QSGD.smallScale
            units[2 * b] = weight * (small ? scale * QSGD.smallScaleFactor : scale) / Float(levels)
            units[2 * b + 1] = small ? QSGD.smallScaleUndo : 1
        }
        let rest = UnsafeRawBufferPointer(rebasing: message[reader.offset...])
        guard let out = output.baseAddress else {
            if format == .elias, bytes0 != 0 || !rest.isEmpty {
                throw GradientCompressionError.corruptMessage("QSGD message for an empty tensor has \(rest.count) stream bytes")
            }
            return
        }
        guard format == .fixedWidth || bytes0 <= rest.count else {
            throw GradientCompressionError.corruptMessage("QSGD stream 0 of \(bytes0) bytes exceeds the \(rest.count) bytes left")
        }
        // The streams are checked while they are decoded, so a corrupt one is found after earlier
        // elements were added: the output's previous values are kept and put back on a throw.
        let saved = UnsafeMutableBufferPointer<Float>.allocate(capacity: n)
        defer { saved.deallocate() }
        _ = saved.initialize(fromContentsOf: output)
        do {
            try units.withUnsafeBufferPointer { u in
                if format == .fixedWidth {
                    try decodeFixedWidth(BitSource(rest, context: "QSGD"), n: n, units: u.baseAddress!, into: out)
                } else {
                    try decodeElias(BitSource(UnsafeRawBufferPointer(rebasing: rest[..<bytes0]), context: "QSGD stream 0"),
                                    BitSource(UnsafeRawBufferPointer(rebasing: rest[bytes0...]), context: "QSGD stream 1"),
                                    nonzeros: nonzeros, n: n, units: u.baseAddress!, into: out)
                }
            }
        } catch {
            _ = output.update(fromContentsOf: saved)
            throw error
        }
    }

    /// `level` (≤ 2²⁴) as a Float without an int→float conversion: `cvtsi2ss` writes only the low
    /// lane of its register, and the compiler reused the register of the previous element's sum,
    /// chaining every element to the last (~11 cycles each, seen in the disassembly). The low 23
    /// bits as the mantissa of 2²³ minus 2²³, plus 2²³·(level >> 23) as a bit pattern (0, 2²³ or 2²⁴).
    @inline(__always)
    static func exactFloat(_ level: UInt64) -> Float {
        let low = Float(bitPattern: 0x4B00_0000 | UInt32(truncatingIfNeeded: level) & 0x7F_FFFF) - 0x1p23
        let k = UInt32(truncatingIfNeeded: level &>> 23)
        return low + Float(bitPattern: k == 0 ? 0 : 0x4A80_0000 &+ k &<< 23)
    }

    /// `units`: (unit, undo) per bucket.
    func decodeFixedWidth(_ bits: BitSource, n: Int, units: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) throws {
        var p = 0  // the bit position, a local so that it stays in a register
        let fieldBits = 1 + levelBits, mask = (UInt64(1) << UInt64(levelBits)) - 1, shift = UInt64(levelBits)
        let maxLevel = UInt64(levels)
        for b in 0..<bucketCount(n) {
            let unit = units[2 &* b], undo = units[2 &* b &+ 1]
            for i in b &* bucketSize ..< Swift.min(n, (b &+ 1) &* bucketSize) {
                let field = try bits.field(fieldBits, at: p, "element \(i)")
                p &+= fieldBits
                let level = field & mask
                guard level <= maxLevel else {
                    throw GradientCompressionError.corruptMessage("QSGD element \(i) has level \(level) > s = \(levels)")
                }
                let magnitude = unit * QSGD.exactFloat(level) * undo
                // The sign bit xor-ed in: `sign ? -m : m` compiled to a branch that random signs mispredict half the time.
                out[i] += Float(bitPattern: magnitude.bitPattern ^ UInt32(truncatingIfNeeded: field &>> shift) &<< 31)
            }
        }
        try bits.expectEnd(at: p)
    }

    /// Decodes the two Elias streams in lockstep (one nonzero of each per iteration: two
    /// independent bit-position chains), then the rest of the longer one.
    func decodeElias(_ source0: BitSource, _ source1: BitSource, nonzeros: (Int, Int), n: Int,
                     units: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) throws {
        let layout = EliasCursor.Layout(n: n, bucketSize: bucketSize, buckets: bucketCount(n), units: units)
        var c0 = EliasCursor(stream: 0, layout), c1 = EliasCursor(stream: 1, layout)
        let maxLevel = UInt64(levels)
        let both = Swift.min(nonzeros.0, nonzeros.1)
        // Levels below 2²³ (s < 2²³) convert to floats with one bit pattern (`exactFloat` otherwise).
        if levels < 1 << 23 {
            for _ in 0..<both {
                try c0.decodeNonzero(source0, maxLevel: maxLevel, narrow: true, layout, into: out)
                try c1.decodeNonzero(source1, maxLevel: maxLevel, narrow: true, layout, into: out)
            }
        } else {
            for _ in 0..<both {
                try c0.decodeNonzero(source0, maxLevel: maxLevel, narrow: false, layout, into: out)
                try c1.decodeNonzero(source1, maxLevel: maxLevel, narrow: false, layout, into: out)
            }
        }
        for _ in both..<nonzeros.0 { try c0.decodeNonzero(source0, maxLevel: maxLevel, narrow: false, layout, into: out) }
        for _ in both..<nonzeros.1 { try c1.decodeNonzero(source1, maxLevel: maxLevel, narrow: false, layout, into: out) }
        try source0.expectEnd(at: c0.p)
        try source1.expectEnd(at: c1.p)
    }
}

extension QSGD {
    static let catalogEntry = ReducerCatalog.Entry(
        name: "qsgd",
        summary: "QSGD: stochastic quantization to `levels` levels per bucket of `bucket` values (l2 or max norm), "
            + "Elias-coded or fixed-width, all-gathered",
        options: [ReducerOption("levels", .integer(1...(1 << 24)), default: "64"),
                  ReducerOption("bucket", .integer(1...Int(Int32.max)), default: "512"),
                  ReducerOption("norm", .choice(["l2", "max"]), default: "l2"),
                  ReducerOption("format", .choice(["elias", "fixed"]), default: "elias"),
                  .feedback(default: "none"), .seed]) { o, seed in
        let q = try QSGD(levels: try o.int("levels"), bucketSize: try o.int("bucket"),
                         scaling: Scaling(rawValue: try o.choice("norm"))!, format: Format(rawValue: try o.choice("format"))!,
                         seed: try o.seed(defaultingTo: seed & 0x7FFF_FFFF_FFFF_FFFF))
        return try ErrorFeedback.wrapping(AllGatherReducer(q), try o.choice("feedback"))
    }
}
