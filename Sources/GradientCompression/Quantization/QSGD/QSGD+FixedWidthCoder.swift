/// QSGD's fixed-width coder (layout in `QSGD+WireFormat.swift`): 1 + ⌈log₂(s+1)⌉ bits per element.
extension QSGD {
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

    /// `level` (≤ 2²⁴) as a Float without an int → float conversion instruction: `cvtsi2ss`
    /// writes only the low lane of its register, so each conversion waits for whatever last wrote
    /// that register, here the previous element's sum (~11 cycles per element, measured). Instead:
    /// the low 23 bits as the mantissa of 2²³, minus 2²³, plus 2²³·(level >> 23) as a bit pattern
    /// (0, 2²³ or 2²⁴).
    @inline(__always)
    static func exactFloat(_ level: UInt64) -> Float {
        let low = Float(bitPattern: 0x4B00_0000 | UInt32(truncatingIfNeeded: level) & 0x7F_FFFF) - 0x1p23
        let k = UInt32(truncatingIfNeeded: level &>> 23)
        return low + Float(bitPattern: k == 0 ? 0 : 0x4A80_0000 &+ k &<< 23)
    }

    /// Adds the decoded elements to `out`; `units` holds (unit, undo) per bucket (`readUnits`).
    func decodeFixedWidth(_ bits: BitSource, n: Int, units: [Float], into out: UnsafeMutablePointer<Float>) throws {
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
}
