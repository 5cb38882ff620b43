import CVectorKernels
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

    /// The clipping bound c·σ (∞ when clipping is off). Sums in fp32 over blocks of 256 elements
    /// (eight lanes of 32), added to fp64 per block: a vectorized pass instead of a scalar fp64 chain.
    func clipBound(_ values: UnsafeBufferPointer<Float>) -> Float {
        guard clip > 0, let p = values.baseAddress, values.count > 0 else { return .infinity }
        let n = values.count
        var sum = 0.0, sumSq = 0.0, i = 0
        while i &+ 256 <= n {
            var s = SIMD8<Float>(repeating: 0), q = SIMD8<Float>(repeating: 0)
            for k in stride(from: 0, to: 256, by: 8) {
                let x = UnsafeRawPointer(p + (i &+ k)).loadUnaligned(as: SIMD8<Float>.self)
                s += x
                q += x * x
            }
            sum += Double(s.sum()); sumSq += Double(q.sum())
            i &+= 256
        }
        while i < n { sum += Double(p[i]); sumSq += Double(p[i]) * Double(p[i]); i &+= 1 }
        let mean = sum / Double(n)
        return clip * Float(max(0, sumSq / Double(n) - mean * mean).squareRoot())
    }

    /// The 2-bit fields of eight elements as 16 bits (element j in bits 2j, 2j + 1): 01 when
    /// U < |x|/s and x > 0, 11 when U < |x|/s and x < 0, else 00.
    @inline(__always)
    static func fields(_ x: SIMD8<Float>, _ u: SIMD8<Float>, scaler: Float, inverse: Float) -> UInt32 {
        let magnitude = unsafeBitCast(unsafeBitCast(x, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: SIMD8<Float>.self)
        let clipped = magnitude.replacing(with: scaler, where: magnitude .> scaler)
        let kept = u .< clipped * inverse
        let low = SIMD8<UInt32>(1, 1 << 2, 1 << 4, 1 << 6, 1 << 8, 1 << 10, 1 << 12, 1 << 14)
        var bits = SIMD8<UInt32>(repeating: 0).replacing(with: low, where: kept)
        bits.replace(with: bits | bits &<< 1, where: kept .& (x .< 0))
        return laneUnion(bits)
    }

    public func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey) throws -> [UInt8] {
        try encode(values, key: key, kernel: .preferred)
    }

    /// max |xᵢ| and the clipping bound (`maximumMagnitude` and `clipBound`; on AVX2 in one pass
    /// that sums in the same order, so both paths give the same bits).
    func statistics(_ values: UnsafeBufferPointer<Float>, kernel: KernelPath) -> (maxAbs: Float, clipBound: Float) {
        guard kernel.hasAVX2, let p = values.baseAddress else { return (maximumMagnitude(values), clipBound(values)) }
        let n = values.count
        var sum = 0.0, sumSq = 0.0
        let maxAbs = terngrad_statistics_avx2(p, n, clip > 0 ? 1 : 0, &sum, &sumSq)
        guard clip > 0 else { return (maxAbs, .infinity) }
        let mean = sum / Double(n)
        return (maxAbs, clip * Float(max(0, sumSq / Double(n) - mean * mean).squareRoot()))
    }

    func encode(_ values: UnsafeBufferPointer<Float>, key: CompressionKey, kernel: KernelPath) throws -> [UInt8] {
        let n = values.count
        let (maxAbs, bound) = statistics(values, kernel: kernel)
        guard maxAbs.isFinite else {
            throw CompressorError.nonFiniteInput(method: "terngrad", tensor: key.tensor, detail: "it holds NaN/Inf")
        }
        let scaler = Swift.min(maxAbs, bound)
        let inverse: Float = scaler > 0 ? 1 / scaler : 0
        // P(b = 1) = min(|x|, s)/s: U < that, U from eight xoshiro128+ lanes on the 2⁻²³ grid
        // (`UniformLanes`), eight elements per step.
        var lanes = key.workerLanes(seed: seed)
        let total = 4 + (2 * n + 7) / 8
        return [UInt8](unsafeUninitializedCapacity: total) { out, count in
            let raw = UnsafeMutableRawPointer(out.baseAddress!)
            raw.storeBytes(of: scaler.bitPattern.littleEndian, as: UInt32.self)
            var i = 0
            if let p = values.baseAddress {
                if kernel.hasAVX2 {
                    lanes.withState { terngrad_fields_avx2(p, n / 8, $0, scaler, inverse, raw.assumingMemoryBound(to: UInt8.self) + 4) }
                    i = n / 8 * 8
                }
                while i &+ 8 <= n {
                    let x = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
                    let f = TernGrad.fields(x, lanes.next(), scaler: scaler, inverse: inverse)
                    raw.storeBytes(of: UInt16(truncatingIfNeeded: f).littleEndian, toByteOffset: 4 &+ i &>> 2, as: UInt16.self)
                    i &+= 8
                }
                if i < n {
                    var x = SIMD8<Float>(repeating: 0)  // zero padding sends 00
                    for k in 0 ..< n &- i { x[k] = p[i &+ k] }
                    let f = TernGrad.fields(x, lanes.next(), scaler: scaler, inverse: inverse)
                    for k in 0 ..< (2 * (n &- i) + 7) / 8 { raw.storeBytes(of: UInt8(truncatingIfNeeded: f >> (8 * k)), toByteOffset: 4 &+ i &>> 2 &+ k, as: UInt8.self) }
                }
            }
            count = total
        }
    }

    public func decode(_ message: UnsafeRawBufferPointer, shape: [Int], key: CompressionKey, weight: Float,
                       accumulatingInto output: UnsafeMutableBufferPointer<Float>) throws {
        try expectMessageBytes(message, fixedMessageBytes(shape: shape)!, "TernGrad", shape: shape)
        let scaler = Float(bitPattern: UInt32(littleEndian: message.loadUnaligned(as: UInt32.self)))
        guard scaler.isFinite, scaler >= 0 else { throw GradientCompressionError.corruptMessage("TernGrad scaler is \(scaler)") }
        let value = weight * scaler
        let n = output.count
        guard let out = output.baseAddress, let m = message.baseAddress else { return }
        let fields = m + 4, fieldBytes = (2 * n + 7) / 8
        // Checked before anything is added, so that a throw leaves `output` as it was: nonzero
        // padding bits, and the invalid code 10 (a pair whose high bit is set and low bit clear).
        if n % 4 != 0, fields.load(fromByteOffset: fieldBytes - 1, as: UInt8.self) >> UInt8(2 * (n % 4)) != 0 {
            throw GradientCompressionError.corruptMessage("TernGrad message has nonzero padding bits")
        }
        var invalid: UInt64 = 0
        var k = 0
        while k &+ 8 <= fieldBytes {
            let w = fields.loadUnaligned(fromByteOffset: k, as: UInt64.self)
            invalid |= (w &>> 1) & ~w & 0x5555_5555_5555_5555
            k &+= 8
        }
        while k < fieldBytes {
            let w = UInt64(fields.load(fromByteOffset: k, as: UInt8.self))
            invalid |= (w &>> 1) & ~w & 0x55
            k &+= 1
        }
        if invalid != 0 {
            let first = (0..<n).first { (fields.load(fromByteOffset: $0 / 4, as: UInt8.self) >> UInt8(2 * ($0 % 4))) & 3 == 2 } ?? -1
            throw GradientCompressionError.corruptMessage("TernGrad element \(first) has the invalid code 10")
        }
        // Four elements per byte: the byte's four multipliers (0, +1, −1) from a 256-entry table.
        var table = [SIMD4<Float>](repeating: .zero, count: 256)
        for byte in 0..<256 {
            for j in 0..<4 { let f = (byte >> (2 * j)) & 3; table[byte][j] = f == 1 ? 1 : f == 3 ? -1 : 0 }
        }
        let groups = n / 4
        table.withUnsafeBufferPointer { t in
            for g in 0..<groups {
                let byte = Int(fields.load(fromByteOffset: g, as: UInt8.self))
                let o = UnsafeMutableRawPointer(out + 4 &* g)
                o.storeBytes(of: o.loadUnaligned(as: SIMD4<Float>.self) + t[byte] * value, as: SIMD4<Float>.self)
            }
        }
        if n > 4 * groups {
            let byte = Int(fields.load(fromByteOffset: groups, as: UInt8.self))
            for j in 0 ..< n - 4 * groups { out[4 * groups + j] += table[byte][j] * value }
        }
    }
}

extension TernGrad {
    static let catalogEntry = ReducerCatalog.Entry(
        name: "terngrad", summary: "TernGrad: stochastic ternary {-s, 0, s} codes with the shared scaler s, gradients clipped at clip·σ, all-gathered",
        options: [ReducerOption("clip", .number(0...1e6), default: "2.5"), .seed]) { o, seed in
        AllGatherReducer(try TernGrad(clip: Float(try o.double("clip")), seed: try o.seed(defaultingTo: seed & 0x7FFF_FFFF_FFFF_FFFF)))
    }
}
