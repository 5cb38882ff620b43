import Collectives
import LinearAlgebra

/// fp16 or bf16 messages (2 bytes per element, round to nearest even; the conversions are
/// `Collectives.HalfWidthFormat`'s, so the half-width all-reduce rounds identically).
///
/// The reducer of the `fp16` / `bf16` methods is `AllReduceReducer(HalfPrecisionCompressor(...))`
/// (a `LinearCompressor`): each worker rounds its values to the format, and the communicator's
/// half-width all-reduce averages the 16-bit patterns (fp32 accumulation in rank order, rounded
/// once in-process), 2 bytes per element and 2(W−1)/W of them per worker: the traffic does not
/// grow with W. As a `Compressor` it still works through `AllGatherReducer` (2n bytes to every
/// worker, fan-out growing with W), e.g. to compare the two.
/// Input policy: NaN/Inf input, and (fp16) a finite value that overflows to Inf (|x| ≥ 65520),
/// make `encode` throw (both forms).
public struct HalfPrecisionCompressor: Compressor, LinearCompressor {
    public enum Format: String, Sendable { case fp16, bf16 }
    public let format: Format

    public init(_ format: Format) { self.format = format }

    public var name: String { format.rawValue }

    public func fixedMessageBytes(shape: [Int]) -> Int? { 2 * Tensor.elementCount(shape) }

    /// The communicator's 16-bit format of `format`.
    public var coefficientFormat: HalfWidthFormat? { halfWidth }

    public var coefficientsAreRoundedValues: Bool { true }

    var halfWidth: HalfWidthFormat { format == .fp16 ? .float16 : .bfloat16 }

    public func coefficientCount(shape: [Int]) -> Int { Tensor.elementCount(shape) }

    /// The linear form: the coefficients are the values rounded to the format (RNE), held in fp32
    /// (exactly representable, so the reducer packs them into 16 bits without a second rounding).
    public func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey,
                       into coefficients: UnsafeMutableBufferPointer<Float>) throws {
        guard let target = coefficients.baseAddress else { return }
        let finite = halfWidth.round(values, into: target)
        guard finite else { throw nonFiniteError(key) }
    }

    /// The linear form's decode: the (averaged) coefficients are the tensor.
    public func decode(_ coefficients: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey,
                       into output: UnsafeMutableBufferPointer<Float>) {
        guard coefficients.count > 0 else { return }
        output.baseAddress!.update(from: coefficients.baseAddress!, count: coefficients.count)
    }

    private func nonFiniteError(_ key: CompressionKey) -> CompressorError {
        let detail = format == .fp16 ? "it holds NaN/Inf or a value beyond fp16's range (|x| ≥ 65520)" : "it holds NaN/Inf"
        return CompressorError.nonFiniteInput(method: format.rawValue, tensor: key.tensor, detail: detail)
    }

    public func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey) throws -> [UInt8] {
        var finite = true
        let bytes = [UInt8](unsafeUninitializedCapacity: 2 * values.count) { buffer, count in
            let target = UnsafeMutableRawPointer(buffer.baseAddress!).assumingMemoryBound(to: UInt16.self)
            finite = halfWidth.narrow(values, into: target)
            count = 2 * values.count
        }
        guard finite else { throw nonFiniteError(key) }
        return bytes
    }

    public func decode(_ message: UnsafeRawBufferPointer, shape: [Int], key: CompressionKey, weight: Float,
                       accumulatingInto output: UnsafeMutableBufferPointer<Float>) throws {
        try expectMessageBytes(message, 2 * output.count, format.rawValue, shape: shape)
        guard output.count > 0 else { return }
        // A corrupt message may carry NaN/Inf patterns; the encoder never sends them.
        guard !halfWidth.holdsNonFinite(message) else {
            throw GradientCompressionError.corruptMessage("\(format.rawValue) message holds NaN/Inf")
        }
        let source = message.baseAddress!.assumingMemoryBound(to: UInt16.self)
        halfWidth.add(source, weight: weight, into: output)
    }
}

extension HalfPrecisionCompressor {
    static let fp16CatalogEntry = ReducerCatalog.Entry(
        name: "fp16", summary: "IEEE half precision (16-bit) all-reduce of the gradients", options: []) { _, _ in
        AllReduceReducer(HalfPrecisionCompressor(.fp16))
    }

    static let bf16CatalogEntry = ReducerCatalog.Entry(
        name: "bf16", summary: "bfloat16 (16-bit, fp32's exponent range) all-reduce of the gradients", options: []) { _, _ in
        AllReduceReducer(HalfPrecisionCompressor(.bf16))
    }
}
