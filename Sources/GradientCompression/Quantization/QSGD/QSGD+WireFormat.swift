import CVectorKernels
import LinearAlgebra

/// QSGD's two message layouts (ALGORITHMS.md §3.2, §10). Both carry the ⌈n/d⌉ bucket scales as
/// fp32; everything is little-endian and every bit field is written least significant bit first.
///
/// - `.fixedWidth`: the scales, then every element as 1 sign bit + ⌈log₂(s+1)⌉ level bits
///   (level in the low bits, sign above it), so a message is exactly
///   ⌈(32·⌈n/d⌉ + n·(1 + ⌈log₂(s+1)⌉)) / 8⌉ bytes.
/// - `.elias`: the paper's sparse stream, split in two. A 12-byte header (the nonzero counts of
///   streams 0 and 1, the byte length of stream 0, each a UInt32), the scales, then stream 0 and
///   stream 1, each padded with zero bits to a whole byte. Stream k holds the buckets b with
///   b % 2 = k, its positions counting only those buckets' elements; for each nonzero element in
///   order it holds Elias-gamma(gap to it; the first gap is its 1-based position), its sign bit,
///   Elias-gamma(ζᵢ) (gamma is chosen in `EliasGamma`). Two streams rather than one so that the
///   encoder and the decoder can run two independent bit-position chains side by side.
extension QSGD {
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
    func streamElements(_ k: Int, _ n: Int) -> Int { qsgd_elias_stream_elements(n, bucketSize, Int32(k)) }

    /// The 12 bytes before an Elias message's scales.
    struct EliasHeader {
        var nonzeros: (Int, Int)
        var stream0Bytes: Int

        /// The two streams in `rest`, the bytes after the scales.
        func streams(_ rest: UnsafeRawBufferPointer) throws -> (UnsafeRawBufferPointer, UnsafeRawBufferPointer) {
            guard stream0Bytes <= rest.count else {
                throw GradientCompressionError.corruptMessage("QSGD stream 0 of \(stream0Bytes) bytes exceeds the \(rest.count) bytes left")
            }
            return (UnsafeRawBufferPointer(rebasing: rest[..<stream0Bytes]), UnsafeRawBufferPointer(rebasing: rest[stream0Bytes...]))
        }
    }

    /// Reads and checks the Elias header of a message for `elements` elements.
    func readEliasHeader(_ reader: inout ByteReader, elements n: Int) throws -> EliasHeader {
        let header = EliasHeader(nonzeros: (Int(try reader.readUInt32("the nonzero count of stream 0")),
                                            Int(try reader.readUInt32("the nonzero count of stream 1"))),
                                 stream0Bytes: Int(try reader.readUInt32("the byte length of stream 0")))
        for (k, count) in [header.nonzeros.0, header.nonzeros.1].enumerated() where count > streamElements(k, n) {
            throw GradientCompressionError.corruptMessage(
                "QSGD message claims \(count) nonzeros in stream \(k) of \(streamElements(k, n)) elements")
        }
        return header
    }

    /// An Elias message: the header, `scales`, and the two streams.
    static func eliasMessage(nonzeros: (Int, Int), scales: [Float], stream0: UnsafeRawBufferPointer,
                             stream1: UnsafeRawBufferPointer) -> [UInt8] {
        let header = 12 + 4 * scales.count, total = header + stream0.count + stream1.count
        return [UInt8](unsafeUninitializedCapacity: total) { out, count in
            let raw = UnsafeMutableRawPointer(out.baseAddress!)
            raw.storeBytes(of: UInt32(nonzeros.0).littleEndian, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: UInt32(nonzeros.1).littleEndian, toByteOffset: 4, as: UInt32.self)
            raw.storeBytes(of: UInt32(stream0.count).littleEndian, toByteOffset: 8, as: UInt32.self)
            for (b, scale) in scales.enumerated() {
                raw.storeBytes(of: scale.bitPattern.littleEndian, toByteOffset: 12 + 4 * b, as: UInt32.self)
            }
            if let s = stream0.baseAddress { (raw + header).copyMemory(from: s, byteCount: stream0.count) }
            if let s = stream1.baseAddress { (raw + header + stream0.count).copyMemory(from: s, byteCount: stream1.count) }
            count = total
        }
    }
}
