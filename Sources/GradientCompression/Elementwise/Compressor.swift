import LinearAlgebra

/// Names one encoding: which worker sent it, at which step, for which tensor.
///
/// Compressors are stateless: every random choice is a pure function of the
/// compressor's seed and this key. Per-worker randomness (QSGD's rounding,
/// TernGrad's and ATOMO's Bernoulli draws) uses all three fields; shared
/// randomness (Random-K's indices) ignores `rank`, so every worker draws the
/// same indices without exchanging anything (ALGORITHMS.md §5.4).
public struct CompressionKey: Sendable, Hashable {
    public var rank: Int
    public var step: Int
    public var tensor: Int

    public init(rank: Int, step: Int, tensor: Int) {
        self.rank = rank
        self.step = step
        self.tensor = tensor
    }

    /// A per-worker generator for this encoding.
    @inlinable
    public func workerGenerator(seed: UInt64, purpose: UInt64 = 0) -> Xoshiro256 {
        Xoshiro256(seed: seed, stream: Philox.stream(UInt64(bitPattern: Int64(rank)), UInt64(bitPattern: Int64(step)),
                                                     UInt64(bitPattern: Int64(tensor)), purpose))
    }

    /// A generator that every worker builds identically for (step, tensor).
    @inlinable
    public func sharedGenerator(seed: UInt64, purpose: UInt64 = 0) -> Xoshiro256 {
        Xoshiro256(seed: seed, stream: Philox.stream(0x5348_4152_4544, UInt64(bitPattern: Int64(step)),
                                                     UInt64(bitPattern: Int64(tensor)), purpose))
    }
}

/// A lossy encoder of one tensor into a byte message, and its decoder.
///
/// Messages are real byte streams: what the reducer all-gathers is exactly
/// what `encode` returned. `decode` must treat its input as untrusted: given
/// any bytes, it either decodes values it could have produced or throws
/// `GradientCompressionError.corruptMessage` with `output` bit for bit as it
/// was (it holds other workers' contributions); it never traps, reads out of
/// bounds, or allocates from a length field (the shape bounds every size).
///
/// Input policy, shared by every compressor (docs/compressors.md):
/// - NaN or ±Inf in the input: `encode` throws `CompressorError.nonFiniteInput`
///   (a worker must not poison the group; the trainer's non-finite stop reports it).
/// - An all-zero tensor (or bucket, or column) encodes to a message decoding to zeros.
public protocol Compressor: Sendable {
    /// A short name with the options, e.g. `qsgd(s=64,d=512,l2,elias)`.
    var name: String { get }

    /// The exact message size for a tensor of `shape` when the format has a fixed size, else nil.
    func fixedMessageBytes(shape: [Int]) -> Int?

    /// Encodes `values` (a tensor of `shape`, row-major).
    func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey) throws -> [UInt8]

    /// Decodes a message for a tensor of `shape` encoded under `key` and adds `weight ×` the
    /// decoded values to `output` (`output.count` = the shape's element count).
    func decode(_ message: UnsafeRawBufferPointer, shape: [Int], key: CompressionKey, weight: Float,
                accumulatingInto output: UnsafeMutableBufferPointer<Float>) throws
}

extension Compressor {
    /// Encodes a tensor.
    public func encode(_ tensor: Tensor, key: CompressionKey) throws -> [UInt8] {
        try tensor.withUnsafeBufferPointer { try encode($0, shape: tensor.shape, key: key) }
    }

    /// Decodes a message into a new tensor of `shape`.
    public func decode(_ message: [UInt8], shape: [Int], key: CompressionKey) throws -> Tensor {
        var out = Tensor(shape: shape)
        try message.withUnsafeBytes { m in
            try out.withUnsafeMutableBufferPointer { try decode(m, shape: shape, key: key, weight: 1, accumulatingInto: $0) }
        }
        return out
    }
}

/// Errors of a compressor's input (decoders throw `GradientCompressionError.corruptMessage`).
public enum CompressorError: Error, Equatable, CustomStringConvertible {
    /// The tensor to encode holds NaN or ±Inf (or a value fp16 cannot hold).
    case nonFiniteInput(method: String, tensor: Int, detail: String)

    public var description: String {
        switch self {
        case let .nonFiniteInput(method, tensor, detail):
            return "\(method): gradient tensor \(tensor) cannot be encoded: \(detail)"
        }
    }
}

/// The uniform float of the per-element stochastic rounding rule `level = ⌊a⌋ + (U < a − ⌊a⌋)`
/// (ALGORITHMS.md §3.4: `U < frac`, never `U > frac`). U is on the 2⁻²⁴ grid, so
/// P(U < f) = ⌈f·2²⁴⌉/2²⁴: the bias is below 2⁻²⁴ of one quantization step.
@inlinable
func roundStochastically(_ a: Float, _ u: Float) -> Float {
    // a ∈ [0, 2²⁴]: truncation is ⌊a⌋, and a conversion instruction where `rounded(.down)` is a
    // libm call on the baseline x86-64 target (no SSE4.1).
    let lower = Float(Int32(a))
    return u < a - lower ? lower + 1 : lower
}
