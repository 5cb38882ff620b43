import LinearAlgebra

/// 1-bit SGD's quantizer (Seide et al. 2014; ALGORITHMS.md §5.6), column-wise two-means
/// reconstruction, "zero threshold" mode.
///
/// The tensor is seen as a matrix (rows = first dimension, columns = the rest, as `Tensor`; a
/// 1-D tensor is one column). For each column j: bit = [xᵢⱼ ≥ 0]; μ₀ⱼ = mean of the column's
/// negative entries, μ₁ⱼ = mean of its non-negative entries (0 when there are none), and the
/// decoder maps bit 0 → μ₀ⱼ, bit 1 → μ₁ⱼ. Use it inside `ErrorFeedback` (the residual of §5.6).
///
/// Aggregation: all-gather of every worker's message (`AllGatherReducer`), not CNTK's
/// reduce-scatter + re-quantized all-gather (which needs point-to-point stripes and a second
/// residual): the decoded average is exact in fp32 and the traffic is (W − 1)× the message,
/// as for the other all-gather methods (docs/compressors.md).
///
/// Message: the m pairs (μ₀ⱼ, μ₁ⱼ) as fp32, then n·m bits in row-major element order:
/// 8m + ⌈nm/8⌉ bytes (§10: per column of height n, n bits + 2 floats).
public struct OneBitSGD: Compressor {
    public init() {}

    public var name: String { "onebit" }

    static func matrix(_ shape: [Int]) -> (rows: Int, columns: Int) {
        shape.count <= 1 ? (Tensor.elementCount(shape), 1) : (shape[0], Tensor.elementCount(shape) / max(1, shape[0]))
    }

    public func fixedMessageBytes(shape: [Int]) -> Int? {
        let (n, m) = OneBitSGD.matrix(shape)
        return 8 * m + (n * m + 7) / 8
    }

    public func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey) throws -> [UInt8] {
        let (n, m) = OneBitSGD.matrix(shape)
        // Column sums and counts of each side, accumulated row by row (contiguous reads).
        var negativeSum = [Double](repeating: 0, count: m), positiveSum = negativeSum
        var negativeCount = [Int](repeating: 0, count: m)
        for r in 0..<n {
            for j in 0..<m {
                let x = values[r &* m &+ j]
                guard x.isFinite else {
                    throw CompressorError.nonFiniteInput(method: "onebit", tensor: key.tensor, detail: "element \(r &* m &+ j) is \(x)")
                }
                if x < 0 { negativeSum[j] += Double(x); negativeCount[j] &+= 1 } else { positiveSum[j] += Double(x) }
            }
        }
        var writer = BitWriter(expectedBits: 64 * m + n * m)
        for j in 0..<m {
            let lower = negativeCount[j] > 0 ? Float(negativeSum[j] / Double(negativeCount[j])) : 0
            let nonNegative = n - negativeCount[j]
            let upper = nonNegative > 0 ? Float(positiveSum[j] / Double(nonNegative)) : 0
            writer.write(UInt64(lower.bitPattern), bits: 32)
            writer.write(UInt64(upper.bitPattern), bits: 32)
        }
        var i = 0
        while i < n * m {
            let chunk = Swift.min(64, n * m - i)
            var word: UInt64 = 0
            for b in 0..<chunk where values[i &+ b] >= 0 { word |= 1 << UInt64(b) }
            writer.write(word, bits: chunk)
            i += chunk
        }
        return writer.finish()
    }

    public func decode(_ message: UnsafeRawBufferPointer, shape: [Int], key: CompressionKey, weight: Float,
                       accumulatingInto output: UnsafeMutableBufferPointer<Float>) throws {
        let (n, m) = OneBitSGD.matrix(shape)
        try expectMessageBytes(message, fixedMessageBytes(shape: shape)!, "1-bit SGD", shape: shape)
        var reader = BitReader(message, context: "1-bit SGD")
        var lower = [Float](repeating: 0, count: m), upper = lower
        for j in 0..<m {
            let l = try reader.readFloat("column \(j)'s lower mean"), u = try reader.readFloat("column \(j)'s upper mean")
            // The encoder's means satisfy μ₀ ≤ 0 ≤ μ₁ and are finite.
            guard l.isFinite, u.isFinite, l <= 0, u >= 0 else {
                throw GradientCompressionError.corruptMessage("1-bit SGD column \(j) has means (\(l), \(u))")
            }
            lower[j] = weight * l
            upper[j] = weight * u
        }
        for r in 0..<n {
            for j in 0..<m {
                output[r &* m &+ j] += try reader.readBit("element \(r &* m &+ j)") ? upper[j] : lower[j]
            }
        }
        try reader.expectEnd()
    }
}
