import Testing
import LinearAlgebra
import TestSupport
@testable import GradientCompression

/// The AVX2 kernels of the quantizers against their portable Swift paths, which are the
/// references: the same arithmetic in the same order, so the messages must be the same bytes.
@Suite(.enabled(if: KernelPath.preferred.hasAVX2, "the CPU has no AVX2/FMA"))
struct VectorKernelTests {
    /// Sizes around the 8-element groups and the 256-element blocks of the statistics pass.
    static let sizes = [1, 7, 8, 9, 255, 256, 257, 1000, 5003]

    @Test(arguments: [Float(0), 2.5])
    func ternGradMessagesAreTheSameBytesOnBothPaths(clip: Float) throws {
        let c = try TernGrad(clip: clip, seed: 7)
        for n in Self.sizes {
            var t = normalTensor([n], seed: UInt64(n))
            t.scalars[n / 2] = 50  // beyond 2.5σ: the clipped scaler is the one used
            for (step, tensor) in [(0, 0), (3, 1)] {
                let key = CompressionKey(rank: 1, step: step, tensor: tensor)
                let (fast, portable) = try t.withUnsafeBufferPointer {
                    (try c.encode($0, key: key, kernel: .avx2), try c.encode($0, key: key, kernel: .portable))
                }
                #expect(fast == portable, "n = \(n), clip = \(clip)")
                let stats = t.withUnsafeBufferPointer { (c.statistics($0, kernel: .avx2), c.statistics($0, kernel: .portable)) }
                #expect(stats.0.maxAbs.bitPattern == stats.1.maxAbs.bitPattern && stats.0.clipBound.bitPattern == stats.1.clipBound.bitPattern)
            }
        }
    }

    /// Dense streams (s = 64), sparse ones (s = 1, long gaps), long level codes (s = 2²⁰: past the
    /// eight-code join), zero and tiny-scale buckets, and buckets that are not multiples of eight;
    /// the levels (`qsgd_levels_avx2`) and the codes (`qsgd_elias_append_avx2`, `_avx512`) differ by path.
    @Test(arguments: [(64, 512), (64, 100), (1, 512), (1, 4096), (1 << 20, 64), (7, 13)])
    func qsgdEliasMessagesAreTheSameBytesOnEveryPath(levels: Int, bucket: Int) throws {
        let q = try QSGD(levels: levels, bucketSize: bucket, scaling: .l2, format: .elias, seed: 3)
        for n in [1, 9, 1000, 20_011] {
            var t = normalTensor([n], seed: UInt64(n))
            for i in 0 ..< min(n, 2 * bucket) { t.scalars[i] = 0 }  // a zero bucket, then a long first gap
            if n > 5 { t.scalars[n - 3] = 1e3 }  // one huge element: the rest of its bucket quantizes to 0
            if n > 3 * bucket { for i in 2 * bucket ..< 3 * bucket { t.scalars[i] *= 1e-25 } }  // a tiny-scale bucket
            let key = CompressionKey(rank: 0, step: 2, tensor: 1)
            let portable = try t.withUnsafeBufferPointer { try q.encodeElias($0, key: key, kernel: .portable) }
            for kernel in KernelPath.preferred == .avx512 ? [KernelPath.avx512, .avx2] : [.avx2] {
                let fast = try t.withUnsafeBufferPointer { try q.encodeElias($0, key: key, kernel: kernel) }
                #expect(fast == portable, "s = \(levels), d = \(bucket), n = \(n), \(kernel)")
            }
        }
    }

    /// The Elias decoder's final pass on every path the CPU has against the reference decoder, bit
    /// for bit: 1-byte level buffers (s ≤ 127: dense, sparse, blocks of zeros), 4-byte ones (s > 127),
    /// buckets that are not multiples of 16 and a short last bucket; earlier sums with ±0.
    @Test(arguments: [(64, 512), (64, 100), (1, 512), (127, 37), (300, 64), (7, 13)])
    func qsgdEliasDecodesTheReferenceSumsOnEveryPath(levels: Int, bucket: Int) throws {
        let q = try QSGD(levels: levels, bucketSize: bucket, scaling: .l2, format: .elias, seed: 3)
        let paths: [KernelPath] = KernelPath.preferred == .avx512 ? [.avx512, .avx2, .portable] : [.avx2, .portable]
        for n in [1, 17, 1000, 20_011] {
            var t = normalTensor([n], seed: UInt64(n))
            for i in 0 ..< min(n / 2, bucket + 40) { t.scalars[i] = 0 }  // a zero bucket and a run of zero levels
            let key = CompressionKey(rank: 0, step: 1, tensor: 2)
            let message = try q.encode(t, key: key)
            var earlier = normalTensor([n], seed: 9).scalars
            for i in stride(from: 0, to: n, by: 5) { earlier[i] = i % 2 == 0 ? 0 : -0.0 }
            let expected = try QSGDReference(q: q).decode(message, weight: 0.75, adding: earlier)
            #expect(expected.map(\.bitPattern) != earlier.map(\.bitPattern))
            for kernel in paths {
                var out = earlier
                try message.withUnsafeBytes { m in
                    try out.withUnsafeMutableBufferPointer { try q.decode(m, shape: [n], weight: 0.75, accumulatingInto: $0, kernel: kernel) }
                }
                #expect(out.map(\.bitPattern) == expected.map(\.bitPattern), "s = \(levels), d = \(bucket), n = \(n), \(kernel)")
            }
        }
    }

    /// Shapes with m below, at and above 8, m not dividing 8 (periods 24, 8008), 1-D tensors,
    /// row counts around the 64-row blocks, and a NaN that both paths must refuse.
    @Test func oneBitMessagesAreTheSameBytesOnBothPaths() throws {
        let c = OneBitSGD()
        for shape in [[1], [7], [1000], [65, 6], [200, 6], [3, 1001], [130, 8], [64, 13], [129, 2, 3], [5000, 6]] {
            let t = normalTensor(shape, seed: UInt64(Tensor.elementCount(shape)))
            let key = CompressionKey(rank: 0, step: 0, tensor: 0)
            let (fast, portable) = try t.withUnsafeBufferPointer {
                (try c.encode($0, shape: shape, key: key, kernel: .avx2), try c.encode($0, shape: shape, key: key, kernel: .portable))
            }
            #expect(fast == portable, "shape \(shape)")
            // The means against fp64 sums of each column (so equal wrong answers cannot pass).
            let (n, m) = OneBitSGD.matrix(shape)
            for j in 0..<m {
                let column = (0..<n).map { Double(t.scalars[$0 * m + j]) }
                let negatives = column.filter { $0 < 0 }, rest = column.filter { $0 >= 0 }
                let lower = Float(bitPattern: UInt32(fast[8 * j]) | UInt32(fast[8 * j + 1]) << 8 | UInt32(fast[8 * j + 2]) << 16 | UInt32(fast[8 * j + 3]) << 24)
                let upper = Float(bitPattern: UInt32(fast[8 * j + 4]) | UInt32(fast[8 * j + 5]) << 8 | UInt32(fast[8 * j + 6]) << 16 | UInt32(fast[8 * j + 7]) << 24)
                let expectedLower = negatives.isEmpty ? 0 : negatives.reduce(0, +) / Double(negatives.count)
                let expectedUpper = rest.isEmpty ? 0 : rest.reduce(0, +) / Double(rest.count)
                #expect(abs(Double(lower) - expectedLower) <= 1e-5 * max(1e-3, abs(expectedLower)), "shape \(shape) column \(j)")
                #expect(abs(Double(upper) - expectedUpper) <= 1e-5 * max(1e-3, abs(expectedUpper)), "shape \(shape) column \(j)")
            }
        }
        var bad = normalTensor([100, 6], seed: 1)
        bad.scalars[333] = .nan
        for kernel in [KernelPath.avx2, .portable] {
            #expect(throws: CompressorError.self) { try bad.withUnsafeBufferPointer { try c.encode($0, shape: [100, 6], key: .init(rank: 0, step: 0, tensor: 0), kernel: kernel) } }
        }
    }
}
