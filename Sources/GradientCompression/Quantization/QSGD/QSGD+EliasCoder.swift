import CVectorKernels
import LinearAlgebra

/// QSGD's Elias coder (layout in `QSGD+WireFormat.swift`).
///
/// Encoding writes the two streams in lockstep (buckets 2g and 2g + 1 together), so that their
/// serial bit-position chains overlap in the CPU. On AVX2 the codes of a bucket are written by
/// `qsgd_elias_append_avx2` or `_avx512` (eight at a time, the same bits); elsewhere by the portable writers
/// below, pairwise for dense buckets and by nonzero mask for sparse ones. Decoding is
/// `qsgd_elias_decode`, plain C for every CPU but for its final pass (AVX2 or AVX-512 where the CPU
/// has them), which checks both streams whole before it adds anything to the output.
extension QSGD {
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
        let vector = kernel.hasAVX2 && n <= 1 << 30
        let bytes = buffer.assumingMemoryBound(to: UInt8.self)
        for b in 0..<buckets {
            let q = try quantizeBucket(b, v, n, lanes: &lanes, key: key, into: words, kernel: kernel)
            scales[b] = q.scale
            let k = b & 1
            nonzeros[k] &+= q.nonzeros
            if vector {
                var c = qsgd_elias_stream(bit: Int64(streams[k].stream.bit), pending: streams[k].stream.pending,
                                          last: Int64(streams[k].last))
                let start = Int64((b &>> 1) &* bucketSize)
                _ = kernel == .avx512 ? qsgd_elias_append_avx512(words, q.count, start, &c, bytes)
                                      : qsgd_elias_append_avx2(words, q.count, start, &c, bytes)
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
        let bytes0 = streams[0].stream.byteCount, bytes1 = streams[1].stream.byteCount - capacity0
        precondition(bytes0 + 8 <= capacity0 && bytes1 + 8 <= capacity1, "QSGD: an Elias stream exceeds its bound")
        return QSGD.eliasMessage(nonzeros: (nonzeros[0], nonzeros[1]), scales: scales,
                                 stream0: UnsafeRawBufferPointer(start: buffer, count: bytes0),
                                 stream1: UnsafeRawBufferPointer(start: buffer + capacity0, count: bytes1))
    }

    /// Adds the decoded nonzeros of both streams to `out`; `units` holds (unit, undo) per bucket.
    /// `kernel` chooses how the final pass over `out` is compiled (the same bits on every path).
    func decodeElias(_ streams: (UnsafeRawBufferPointer, UnsafeRawBufferPointer), nonzeros: (Int, Int), n: Int,
                     units: [Float], into out: UnsafeMutablePointer<Float>, kernel: KernelPath) throws {
        var fault = qsgd_elias_fault()
        // The dense level buffers of both streams, 1 byte per element for s ≤ 127, else 4.
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: (n + 128) * (levels <= 127 ? 1 : 4), alignment: 64)
        defer { scratch.deallocate() }
        let status = units.withUnsafeBufferPointer { u in
            qsgd_elias_decode(streams.0.baseAddress?.assumingMemoryBound(to: UInt8.self), streams.0.count, nonzeros.0,
                              streams.1.baseAddress?.assumingMemoryBound(to: UInt8.self), streams.1.count, nonzeros.1,
                              n, bucketSize, u.baseAddress, UInt64(levels), scratch, out, &fault,
                              Int32(kernel == .avx512 ? QSGD_ELIAS_AVX512 : kernel == .avx2 ? QSGD_ELIAS_AVX2 : QSGD_ELIAS_PORTABLE))
        }
        guard status != 0 else { return }
        let place = "QSGD stream \(fault.stream)" + (fault.position < 0 ? " before its first nonzero" : " after position \(fault.position)")
        let problem: String
        switch Int(status) {
        case Int(QSGD_ELIAS_TRUNCATED): problem = "ends inside a code"
        case Int(QSGD_ELIAS_CODE_TOO_LONG): problem = "has a code with more than 63 zero bits (no 64-bit value)"
        case Int(QSGD_ELIAS_LEVEL_ABOVE_S): problem = "has level \(fault.value) > s = \(levels)"
        case Int(QSGD_ELIAS_GAP_BEYOND_TENSOR): problem = "has a nonzero \(fault.value) positions on, beyond the tensor"
        case Int(QSGD_ELIAS_TRAILING_BITS): problem = "has \(fault.value) unread bits after its last code"
        default: problem = "has nonzero padding bits"
        }
        throw GradientCompressionError.corruptMessage("\(place) \(problem)")
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
    /// returning its state by value, so that the loop's live values stay in registers: written
    /// inline for both streams, the compiler kept the two streams' states on the stack.
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
}
