import LinearAlgebra

/// TernGrad (Wen et al. 2017; ALGORITHMS.md §5.1): per tensor, optional clipping to ±c·σ, scaler
/// s = max|gᵢ|, and gᵢ sent as s·sign(gᵢ)·bᵢ with bᵢ ~ Bernoulli(|gᵢ|/s), so E = gᵢ (of the
/// clipped tensor).
///
/// Scaler sharing (§5.1 leaves max-vs-mean open): *none* — every message carries its own
/// scaler (GRACE's variant). The paper shares s = max_w s_w so that ternary integers can be
/// summed by an integer all-reduce; our `Communicator` all-reduces fp32 only, where an
/// integer sum would cost 32 bits per element, so the messages are all-gathered
/// (`AllGatherReducer`) and a shared scaler would buy nothing but an extra collective.
///
/// Message: the fp32 scaler, then 2 bits per element (00 → 0, 01 → +1, 11 → −1; 10 is invalid),
/// ⌈2n/8⌉ bytes: 4 + ⌈n/4⌉ bytes in all (§10: ≈ 2n + 32 bits per tensor).
/// σ is the standard deviation about the mean (computed in Double). `clip` = 0 disables clipping;
/// the default 2.5 is the paper's and GRACE's.
public struct TernGrad: Compressor {
    public let clip: Float
    public let seed: UInt64

    public init(clip: Float = 2.5, seed: UInt64 = 0) throws {
        guard clip >= 0, clip.isFinite else { throw GradientCompressionError.invalidOption("terngrad: clip=\(clip) must be ≥ 0 (0 disables)") }
        self.clip = clip
        self.seed = seed
    }

    public var name: String { "terngrad(clip=\(clip))" }

    public func fixedMessageBytes(shape: [Int]) -> Int? { 4 + (2 * Tensor.elementCount(shape) + 7) / 8 }

    /// The clipping bound c·σ (∞ when clipping is off).
    func clipBound(_ values: UnsafeBufferPointer<Float>) -> Float {
        guard clip > 0, values.count > 0 else { return .infinity }
        var sum = 0.0, sumSq = 0.0
        for x in values { sum += Double(x); sumSq += Double(x) * Double(x) }
        let mean = sum / Double(values.count)
        return clip * Float(max(0, sumSq / Double(values.count) - mean * mean).squareRoot())
    }

    public func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey) throws -> [UInt8] {
        let n = values.count
        let maxAbs = maximumMagnitude(values)
        guard maxAbs.isFinite else {
            throw CompressorError.nonFiniteInput(method: "terngrad", tensor: key.tensor, detail: "it holds NaN/Inf")
        }
        let scaler = Swift.min(maxAbs, clipBound(values))
        var writer = BitWriter(expectedBits: 32 + 2 * n)
        writer.write(UInt64(scaler.bitPattern), bits: 32)
        var generator = key.workerStream(seed: seed)
        let inverse: Float = scaler > 0 ? 1 / scaler : 0
        for i in 0..<n {
            let x = Swift.max(-scaler, Swift.min(scaler, values[i]))
            // P(b = 1) = |x|/s: U < |x|/s with U uniform on the 2⁻²⁴ grid.
            let u = generator.nextUniform()
            let field: UInt64 = u < Swift.abs(x) * inverse ? (x < 0 ? 3 : 1) : 0
            writer.write(field, bits: 2)
        }
        return writer.finish()
    }

    public func decode(_ message: UnsafeRawBufferPointer, shape: [Int], key: CompressionKey, weight: Float,
                       accumulatingInto output: UnsafeMutableBufferPointer<Float>) throws {
        try expectMessageBytes(message, fixedMessageBytes(shape: shape)!, "TernGrad", shape: shape)
        var reader = BitReader(message, context: "TernGrad")
        let scaler = try reader.readFloat("the scaler")
        guard scaler.isFinite, scaler >= 0 else { throw GradientCompressionError.corruptMessage("TernGrad scaler is \(scaler)") }
        let value = weight * scaler
        for i in 0..<output.count {
            switch try reader.read(bits: 2, "element \(i)") {
            case 0: break
            case 1: output[i] += value
            case 3: output[i] -= value
            default: throw GradientCompressionError.corruptMessage("TernGrad element \(i) has the invalid code 10")
            }
        }
        try reader.expectEnd()
    }
}
