import LinearAlgebra

/// QSGD's messages written and read plainly, one element at a time with `BitWriter`,
/// `BitReader` and `EliasGamma`: the oracle the tests hold `QSGD`'s fast coders to (the same
/// bytes from `encode`, the same sums from `decode`, and a throw for the same corrupt messages).
///
/// Each step is the definition in `QSGD` and `QSGD+WireFormat.swift`: a bucket's scale, then
/// ζᵢ = ⌊aᵢ⌋ + [Uᵢ < aᵢ − ⌊aᵢ⌋] with aᵢ = min(|vᵢ|·s/scale, s) and element j of a nonzero bucket
/// drawing lane j mod 8 of step ⌊j/8⌋ of the lanes, then the fields in layout order.
struct QSGDReference {
    let q: QSGD

    /// A bucket's scale as sent, the factor its levels are drawn with, whether it draws uniforms
    /// at all (a zero bucket does not) and whether it is tiny (its levels are those of 2¹⁰⁰·v).
    func bucketScale(_ bucket: [Float]) -> (sent: Float, factor: Float, draws: Bool, tiny: Bool) {
        let s = Float(q.levels)
        let scale = bucket.withUnsafeBufferPointer { q.scale(of: $0) }
        if !(scale < QSGD.smallScale) { return (scale, s / scale, true, false) }
        if scale == 0 && (q.scaling == .max || bucket.allSatisfy { $0 == 0 }) { return (0, 0, false, false) }
        // Tiny: the levels of 2¹⁰⁰·v against the scale sent (see `QSGD+Quantizer.swift`).
        let scaled = bucket.map { $0 * QSGD.smallScaleFactor }
        let sent = scaled.withUnsafeBufferPointer { q.scale(of: $0) } * QSGD.smallScaleUndo
        return (sent, s / (sent * QSGD.smallScaleFactor), true, true)
    }

    /// The scales and the signed levels (ζᵢ, vᵢ < 0) of every element.
    func quantize(_ v: [Float], key: CompressionKey) throws -> (scales: [Float], levels: [(level: UInt64, negative: Bool)]) {
        let d = q.bucketSize, s = Float(q.levels)
        var lanes = key.workerLanes(seed: q.seed)
        var scales: [Float] = [], levels: [(level: UInt64, negative: Bool)] = []
        for start in stride(from: 0, to: v.count, by: d) {
            var bucket = Array(v[start ..< min(v.count, start + d)])
            guard bucket.allSatisfy(\.isFinite) else {
                throw CompressorError.nonFiniteInput(method: "qsgd", tensor: key.tensor, detail: "bucket \(start / d) has a NaN/Inf element")
            }
            let (sent, factor, draws, tiny) = bucketScale(bucket)
            guard sent.isFinite else {
                throw CompressorError.nonFiniteInput(method: "qsgd", tensor: key.tensor, detail: "bucket \(start / d) has an fp32-overflowing norm")
            }
            scales.append(sent)
            if tiny { bucket = bucket.map { $0 * QSGD.smallScaleFactor } }
            var u: [Float] = []
            if draws { while u.count < bucket.count { let step = lanes.next(); for l in 0..<8 { u.append(step[l]) } } }
            for (j, x) in bucket.enumerated() {
                var level: Float = 0
                if draws {
                    let a = min(abs(x) * factor, s), lower = a.rounded(.down)
                    level = min(u[j] < a - lower ? lower + 1 : lower, s)
                }
                levels.append((UInt64(level), x < 0))
            }
        }
        return (scales, levels)
    }

    func encode(_ t: Tensor, key: CompressionKey) throws -> [UInt8] {
        let (scales, levels) = try quantize(t.scalars, key: key)
        if q.format == .fixedWidth {
            var w = BitWriter()
            for scale in scales { w.write(UInt64(scale.bitPattern), bits: 32) }
            for (level, negative) in levels { w.write(level | (negative ? 1 : 0) << UInt64(q.levelBits), bits: 1 + q.levelBits) }
            return w.finish()
        }
        // Stream k: buckets b with b % 2 = k, positions counting that stream's elements.
        var streams = [BitWriter(), BitWriter()], nonzeros = [0, 0], last = [-1, -1], position = [0, 0]
        for (i, (level, negative)) in levels.enumerated() {
            let k = (i / q.bucketSize) % 2
            if level != 0 {
                EliasGamma.write(UInt64(position[k] - last[k]), to: &streams[k])
                streams[k].write(negative ? 1 : 0, bits: 1)
                EliasGamma.write(level, to: &streams[k])
                last[k] = position[k]
                nonzeros[k] += 1
            }
            position[k] += 1
        }
        let stream0 = streams[0].finish(), stream1 = streams[1].finish()
        var message: [UInt8] = []
        for word in [UInt32(nonzeros[0]), UInt32(nonzeros[1]), UInt32(stream0.count)] + scales.map(\.bitPattern) {
            message.appendLittleEndian(word)
        }
        return message + stream0 + stream1
    }

    /// `output` plus weight × the decoded message; throws `GradientCompressionError.corruptMessage`
    /// for every message the layout does not allow.
    func decode(_ message: [UInt8], weight: Float, adding output: [Float]) throws -> [Float] {
        let n = output.count, d = q.bucketSize, buckets = (n + d - 1) / d
        var out = output
        try message.withUnsafeBytes { bytes in
            var levels = [UInt64](repeating: 0, count: n), negative = [Bool](repeating: false, count: n)
            var offset = 0
            func uint32(_ what: String) throws -> UInt32 {
                guard offset + 4 <= bytes.count else { throw GradientCompressionError.corruptMessage("QSGD message ends in \(what)") }
                defer { offset += 4 }
                return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            }
            var header: [Int] = []
            if q.format == .elias { for what in ["nonzeros 0", "nonzeros 1", "stream 0 bytes"] { header.append(Int(try uint32(what))) } }
            var scales: [Float] = []
            for b in 0..<buckets {
                let scale = Float(bitPattern: try uint32("scale \(b)"))
                guard scale.isFinite, scale >= 0 else { throw GradientCompressionError.corruptMessage("QSGD scale \(scale)") }
                scales.append(scale)
            }
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            if q.format == .fixedWidth {
                var r = BitReader(rest, context: "QSGD")
                for i in 0..<n {
                    let field = try r.read(bits: 1 + q.levelBits)
                    levels[i] = field & ((1 << UInt64(q.levelBits)) - 1)
                    negative[i] = field >> UInt64(q.levelBits) != 0
                    guard levels[i] <= q.levels else { throw GradientCompressionError.corruptMessage("QSGD level \(levels[i])") }
                }
                try r.expectEnd()
            } else {
                guard header[2] <= rest.count else { throw GradientCompressionError.corruptMessage("QSGD stream 0 length") }
                let parts = [UnsafeRawBufferPointer(rebasing: rest[..<header[2]]), UnsafeRawBufferPointer(rebasing: rest[header[2]...])]
                // Stream k's positions, in tensor indices.
                let indices = [0, 1].map { k in (0..<n).filter { ($0 / d) % 2 == k } }
                for k in 0..<2 {
                    guard header[k] <= indices[k].count else { throw GradientCompressionError.corruptMessage("QSGD nonzero count") }
                    var r = BitReader(parts[k], context: "QSGD")
                    var position = -1
                    for _ in 0..<header[k] {
                        let gap = try EliasGamma.read(from: &r)
                        let sign = try r.readBit()
                        let level = try EliasGamma.read(from: &r)
                        guard level <= q.levels else { throw GradientCompressionError.corruptMessage("QSGD level \(level)") }
                        guard gap < UInt64(indices[k].count - position) else { throw GradientCompressionError.corruptMessage("QSGD gap \(gap)") }
                        position += Int(gap)
                        levels[indices[k][position]] = level
                        negative[indices[k][position]] = sign
                    }
                    try r.expectEnd()
                }
            }
            if n == 0 && !rest.isEmpty { throw GradientCompressionError.corruptMessage("QSGD stream bytes for an empty tensor") }
            for i in 0..<n where levels[i] != 0 || q.format == .fixedWidth {
                // (weight·scale/s·ζ), with a tiny scale's power of two applied to the unit and undone after.
                let scale = scales[i / d], small = scale < QSGD.smallScale
                let unit = weight * (small ? scale * QSGD.smallScaleFactor : scale) / Float(q.levels)
                let magnitude = unit * Float(levels[i]) * (small ? QSGD.smallScaleUndo : 1)
                out[i] += negative[i] ? -magnitude : magnitude
            }
        }
        return out
    }
}
