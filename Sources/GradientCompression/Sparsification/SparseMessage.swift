/// The wire format of a sparse vector with a known number of entries k: k fp32 values, then k
/// 32-bit indices, little-endian, indices strictly increasing: 8k bytes (ALGORITHMS.md §5.4,
/// §10: 64k bits). Shared by Top-K and DGC.
enum SparseMessage {
    static func bytes(count k: Int) -> Int { 8 * k }

    /// The message for `values[indices]` (indices ascending).
    static func encode(_ values: UnsafeBufferPointer<Float>, indices: [Int32]) -> [UInt8] {
        let k = indices.count
        return [UInt8](unsafeUninitializedCapacity: 8 * k) { buffer, count in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            for (j, i) in indices.enumerated() {
                raw.storeBytes(of: values[Int(i)].bitPattern.littleEndian, toByteOffset: 4 * j, as: UInt32.self)
                raw.storeBytes(of: UInt32(bitPattern: i).littleEndian, toByteOffset: 4 * (k + j), as: UInt32.self)
            }
            count = 8 * k
        }
    }

    /// Adds `weight × value` at each index; throws on a wrong length, an index out of range or out
    /// of order, or a non-finite value (which the encoders never send), before adding anything.
    static func decode(_ message: UnsafeRawBufferPointer, count k: Int, context: String, shape: [Int], weight: Float,
                       accumulatingInto output: UnsafeMutableBufferPointer<Float>) throws {
        try expectMessageBytes(message, 8 * k, context, shape: shape)
        func entry(_ j: Int) -> (value: Float, index: Int) {
            (Float(bitPattern: UInt32(littleEndian: message.loadUnaligned(fromByteOffset: 4 * j, as: UInt32.self))),
             Int(UInt32(littleEndian: message.loadUnaligned(fromByteOffset: 4 * (k + j), as: UInt32.self))))
        }
        var previous = -1
        for j in 0..<k {
            let (value, index) = entry(j)
            guard index > previous, index < output.count else {
                throw GradientCompressionError.corruptMessage(
                    "\(context) entry \(j) has index \(index) (previous \(previous), tensor of \(output.count) elements)")
            }
            guard value.isFinite else {
                throw GradientCompressionError.corruptMessage("\(context) entry \(j) has value \(value)")
            }
            previous = index
        }
        for j in 0..<k {
            let (value, index) = entry(j)
            output[index] += weight * value
        }
    }
}

/// k = max(1, ⌊ratio·n⌋) (at most n; 0 for an empty tensor): the number of entries Top-K,
/// Random-K and DGC keep. `ratio` is the fraction of *elements* kept (Top-K then sends 2k words;
/// the paper-code convention halves k so values + indices ≈ ratio·n, see docs/compressors.md).
@inlinable
public func sparseCount(ratio: Double, elements n: Int) -> Int {
    n == 0 ? 0 : min(n, max(1, Int(ratio * Double(n))))
}
