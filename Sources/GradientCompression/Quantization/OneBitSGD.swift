import CVectorKernels
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

    /// `onebit(feedback=none)`: the catalog's `onebit` runs with error feedback unless told
    /// otherwise, so the bare exchange says it has none (`ErrorFeedback` names its own mode).
    public var name: String { "onebit(feedback=none)" }

    static func matrix(_ shape: [Int]) -> (rows: Int, columns: Int) {
        shape.count <= 1 ? (Tensor.elementCount(shape), 1) : (shape[0], Tensor.elementCount(shape) / max(1, shape[0]))
    }

    public func fixedMessageBytes(shape: [Int]) -> Int? {
        let (n, m) = OneBitSGD.matrix(shape)
        return 8 * m + (n * m + 7) / 8
    }

    public func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey) throws -> [UInt8] {
        try encode(values, shape: shape, key: key, kernel: .preferred)
    }

    /// lcm(8, m): the lanes of `columnStatistics`, whole rows of 8-element groups.
    static func period(columns m: Int) -> Int {
        var a = 8, b = m
        while b != 0 { (a, b) = (b, a % b) }
        return 8 * m / a
    }

    /// Per column j: the sums of min(x, 0) and of max(x, 0) over the column, and the count of its
    /// negative entries. Order (one read, vectorizable for any m, and `onebit_encode_avx2`'s): per
    /// block of 64 rows, fp32 lane sums over e mod P for the block's elements e in ascending order
    /// (P = lcm(8, m), which divides 64m, so every block starts at lane 0), then the lanes in
    /// ascending order added to fp64 sums of column p mod m. A block of 64 rows bounds the fp32
    /// sums' rounding as the column-wise fp32 blocks did.
    static func columnStatistics(_ v: UnsafePointer<Float>, rows n: Int, columns m: Int)
        -> (negativeSum: [Double], positiveSum: [Double], negativeCount: [Int]) {
        let period = OneBitSGD.period(columns: m)
        var negativeSum = [Double](repeating: 0, count: m), positiveSum = negativeSum
        var negativeCount = [Int](repeating: 0, count: m)
        var negative = [Float](repeating: 0, count: period), positive = negative
        var count = [Int](repeating: 0, count: period)
        var r = 0
        while r < n {
            let block = v + r &* m, elements = Swift.min(64, n &- r) &* m
            for p in 0..<period { negative[p] = 0; positive[p] = 0; count[p] = 0 }
            var p = 0
            for e in 0..<elements {
                let x = block[e]
                negative[p] += Swift.min(x, 0)
                positive[p] += Swift.max(x, 0)
                count[p] &+= x < 0 ? 1 : 0
                p = p &+ 1 == period ? 0 : p &+ 1
            }
            for p in 0..<period {
                negativeSum[p % m] += Double(negative[p]); positiveSum[p % m] += Double(positive[p]); negativeCount[p % m] &+= count[p]
            }
            r &+= 64
        }
        return (negativeSum, positiveSum, negativeCount)
    }

    func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey, kernel: KernelPath) throws -> [UInt8] {
        let (n, m) = OneBitSGD.matrix(shape)
        let count = Swift.min(values.count, n * m)
        func nonFinite() -> Error {
            let i = values.firstIndex { !$0.isFinite } ?? 0
            return CompressorError.nonFiniteInput(method: "onebit", tensor: key.tensor, detail: "element \(i) is \(values[i])")
        }
        let total = 8 * m + (count + 7) / 8
        var message = [UInt8](repeating: 0, count: total)
        guard let v = values.baseAddress, m > 0, count > 0 else { return message }
        var negativeSum = [Double](repeating: 0, count: m), positiveSum = negativeSum
        var negativeCount = [Int](repeating: 0, count: m)
        if kernel.hasAVX2 && count == n * m {
            // Statistics and bits in one read of the input.
            let period = OneBitSGD.period(columns: m)
            var lanes = [Float](repeating: 0, count: 3 * period)
            var counts = [Int64](repeating: 0, count: m)
            let finite = message.withUnsafeMutableBufferPointer { out in
                onebit_encode_avx2(v, n, m, period, &lanes, &negativeSum, &positiveSum, &counts, out.baseAddress! + 8 * m)
            }
            guard finite == 1 else { throw nonFinite() }
            negativeCount = counts.map { Int($0) }
        } else {
            guard maximumMagnitude(values).isFinite else { throw nonFinite() }
            (negativeSum, positiveSum, negativeCount) = OneBitSGD.columnStatistics(v, rows: count / m, columns: m)
            if count % m != 0 {
                // A buffer shorter than the shape: the partial row's elements count in their columns too.
                for e in count / m * m ..< count {
                    let x = v[e]
                    negativeSum[e % m] += Double(Swift.min(x, 0)); positiveSum[e % m] += Double(Swift.max(x, 0))
                    negativeCount[e % m] &+= x < 0 ? 1 : 0
                }
            }
            // Bit i (row-major) = [xᵢ ≥ 0], eight elements per byte: a vector compare, an and with 2ʲ
            // and their union (`laneUnion`).
            message.withUnsafeMutableBytes { raw in
                let bitsOut = raw.baseAddress! + 8 * m
                let weights = SIMD8<UInt32>(1, 2, 4, 8, 16, 32, 64, 128)
                var i = 0
                while i &+ 8 <= count {
                    let x = UnsafeRawPointer(v + i).loadUnaligned(as: SIMD8<Float>.self)
                    let byte = laneUnion(SIMD8<UInt32>(repeating: 0).replacing(with: weights, where: x .>= 0))
                    bitsOut.storeBytes(of: UInt8(truncatingIfNeeded: byte), toByteOffset: i &>> 3, as: UInt8.self)
                    i &+= 8
                }
                if i < count {
                    var byte: UInt8 = 0
                    for k in 0 ..< count &- i where v[i &+ k] >= 0 { byte |= 1 << UInt8(k) }
                    bitsOut.storeBytes(of: byte, toByteOffset: i &>> 3, as: UInt8.self)
                }
            }
        }
        message.withUnsafeMutableBytes { raw in
            for j in 0..<m {
                let lower = negativeCount[j] > 0 ? Float(negativeSum[j] / Double(negativeCount[j])) : 0
                let nonNegative = n - negativeCount[j]
                let upper = nonNegative > 0 ? Float(positiveSum[j] / Double(nonNegative)) : 0
                raw.storeBytes(of: lower.bitPattern.littleEndian, toByteOffset: 8 * j, as: UInt32.self)
                raw.storeBytes(of: upper.bitPattern.littleEndian, toByteOffset: 8 * j + 4, as: UInt32.self)
            }
        }
        return message
    }

    public func decode(_ message: UnsafeRawBufferPointer, shape: [Int], key: CompressionKey, weight: Float,
                       accumulatingInto output: UnsafeMutableBufferPointer<Float>) throws {
        let (n, m) = OneBitSGD.matrix(shape)
        try expectMessageBytes(message, fixedMessageBytes(shape: shape)!, "1-bit SGD", shape: shape)
        // Column j's decoded means at 2j (bit 0) and 2j + 1 (bit 1): the bit indexes the pair, no
        // branch (`bit ? upper : lower` compiled to one that random bits mispredict half the time).
        var means = [Float](repeating: 0, count: 2 * m)
        for j in 0..<m {
            let l = Float(bitPattern: UInt32(littleEndian: message.loadUnaligned(fromByteOffset: 8 * j, as: UInt32.self)))
            let u = Float(bitPattern: UInt32(littleEndian: message.loadUnaligned(fromByteOffset: 8 * j + 4, as: UInt32.self)))
            // The encoder's means satisfy μ₀ ≤ 0 ≤ μ₁ and are finite.
            guard l.isFinite, u.isFinite, l <= 0, u >= 0 else {
                throw GradientCompressionError.corruptMessage("1-bit SGD column \(j) has means (\(l), \(u))")
            }
            means[2 * j] = weight * l
            means[2 * j + 1] = weight * u
        }
        let count = Swift.min(n * m, output.count)
        guard let out = output.baseAddress, let base = message.baseAddress, count > 0 else { return }
        let bits = base + 8 * m
        if count % 8 != 0, bits.load(fromByteOffset: count / 8, as: UInt8.self) >> UInt8(count % 8) != 0 {
            throw GradientCompressionError.corruptMessage("1-bit SGD message has nonzero padding bits")
        }
        means.withUnsafeBufferPointer { pairs in
            var j = 0  // 2 × the column, wrapping at 2m
            for i in 0..<count {
                let bit = Int(truncatingIfNeeded: (bits.load(fromByteOffset: i &>> 3, as: UInt8.self) &>> UInt8(truncatingIfNeeded: i & 7)) & 1)
                out[i] += pairs[j | bit]
                j &+= 2
                j = j == 2 &* m ? 0 : j
            }
        }
    }
}

extension OneBitSGD {
    static let catalogEntry = ReducerCatalog.Entry(
        name: "onebit",
        summary: "1-bit SGD: the sign of each value and two means per column (of its positive and its negative values), with error feedback, all-gathered",
        options: [.feedback(default: "ef")]) { o, _ in
        try ErrorFeedback.wrapping(AllGatherReducer(OneBitSGD()), try o.choice("feedback"))
    }
}
