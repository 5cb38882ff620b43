import LinearAlgebra

/// fp16 or bf16 messages (2 bytes per element, round to nearest even; `HalfPrecision`).
///
/// Our `Communicator` all-reduces fp32 only, so a 16-bit all-reduce cannot be expressed on it
/// without sending 4 bytes per element; this compressor therefore goes through
/// `AllGatherReducer`: each worker all-gathers its 2n-byte message and everyone sums in fp32.
/// The bytes are honest; the fan-out grows with W (see docs/compressors.md).
/// Input policy: NaN/Inf input, and (fp16) a finite value that overflows to Inf (|x| ≥ 65520),
/// make `encode` throw.
public struct HalfPrecisionCompressor: Compressor {
    public enum Format: String, Sendable { case fp16, bf16 }
    public let format: Format

    public init(_ format: Format) { self.format = format }

    public var name: String { format.rawValue }

    public func fixedMessageBytes(shape: [Int]) -> Int? { 2 * Tensor.elementCount(shape) }

    public func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey) throws -> [UInt8] {
        var finite = true
        let bytes = [UInt8](unsafeUninitializedCapacity: 2 * values.count) { buffer, count in
            let target = UnsafeMutableRawPointer(buffer.baseAddress!).assumingMemoryBound(to: UInt16.self)
            finite = format == .fp16 ? HalfPrecision.toFloat16(values, target) : HalfPrecision.toBFloat16(values, target)
            count = 2 * values.count
        }
        guard finite else {
            let detail = format == .fp16 ? "it holds NaN/Inf or a value beyond fp16's range (|x| ≥ 65520)" : "it holds NaN/Inf"
            throw CompressorError.nonFiniteInput(method: format.rawValue, tensor: key.tensor, detail: detail)
        }
        return bytes
    }

    public func decode(_ message: UnsafeRawBufferPointer, shape: [Int], key: CompressionKey, weight: Float,
                       accumulatingInto output: UnsafeMutableBufferPointer<Float>) throws {
        try expectMessageBytes(message, 2 * output.count, format.rawValue, shape: shape)
        guard output.count > 0 else { return }
        // A corrupt message may carry NaN/Inf patterns; the encoder never sends them.
        let exponent: UInt16 = format == .fp16 ? 0x7C00 : 0x7F80
        var sawNonFinite = false
        for j in 0..<output.count {
            let h = UInt16(littleEndian: message.loadUnaligned(fromByteOffset: 2 * j, as: UInt16.self))
            sawNonFinite = sawNonFinite || (h & exponent == exponent)
        }
        guard !sawNonFinite else { throw GradientCompressionError.corruptMessage("\(format.rawValue) message holds NaN/Inf") }
        let source = message.baseAddress!.assumingMemoryBound(to: UInt16.self)
        if format == .fp16 { HalfPrecision.addFloat16(source, weight: weight, into: output) }
        else { HalfPrecision.addBFloat16(source, weight: weight, into: output) }
    }
}
