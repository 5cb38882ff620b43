import Testing
import LinearAlgebra
@testable import GradientCompression
import TestSupport

@Suite struct QSGDTests {
    static let configurations: [(Int, Int, QSGD.Scaling, QSGD.Format)] = [
        (1, 16, .l2, .elias), (4, 32, .l2, .fixedWidth), (64, 512, .l2, .elias), (7, 10, .max, .fixedWidth), (3, 8, .max, .elias),
    ]

    @Test func isUnbiased() throws {
        // 5-standard-error bound per coordinate (QuantizerTestSupport), 4000 encodings, fixed seeds.
        let t = normalTensor([50], seed: 1)
        for (s, d, scaling, format) in QSGDTests.configurations {
            let q = try QSGD(levels: s, bucketSize: d, scaling: scaling, format: format, seed: 5)
            let trials = 4000
            let m = try decodedMoments(trials, t) { try q.decode(try q.encode(t, key: .init(rank: 0, step: $0, tensor: 0)), shape: t.shape, key: .init(rank: 0, step: $0, tensor: 0)) }
            #expect(unbiasednessViolations(t, mean: m.mean, variance: m.variance, trials: trials).isEmpty, "\(q.name)")
        }
    }

    @Test func varianceIsWithinTheBucketBound() throws {
        // E‖Q(v) − v‖² ≤ min(d/s², √d/s)·‖v‖² for L2 scaling (§3.1), per bucket; measured over 2000
        // draws and allowed 10% of sampling slack (the bound is usually far from tight).
        let t = normalTensor([256], seed: 2)
        for (s, d) in [(1, 64), (2, 16), (8, 256), (16, 4)] {
            let q = try QSGD(levels: s, bucketSize: d, scaling: .l2, format: .fixedWidth, seed: 9)
            let trials = 2000
            var errors = [Double](repeating: 0, count: 256 / d)
            for trial in 0..<trials {
                let key = CompressionKey(rank: 0, step: trial, tensor: 0)
                let decoded = try q.decode(try q.encode(t, key: key), shape: t.shape, key: key)
                for i in 0..<256 { let e = Double(decoded.scalars[i] - t.scalars[i]); errors[i / d] += e * e / Double(trials) }
            }
            for b in errors.indices {
                let normSquared = t.scalars[b * d ..< (b + 1) * d].reduce(0.0) { $0 + Double($1) * Double($1) }
                let bound = min(Double(d) / Double(s * s), Double(d).squareRoot() / Double(s)) * normSquared
                #expect(errors[b] <= 1.1 * bound, "s=\(s) d=\(d) bucket \(b): \(errors[b]) > \(bound)")
            }
        }
    }

    @Test func fixedWidthMessagesHaveTheFormulaSizeAndBothFormatsDecodeTheSameLevels() throws {
        for shape in [[1], [7], [64, 9], [1000], [3, 5, 7]] {
            let t = normalTensor(shape, seed: 4)
            for (s, d) in [(1, 512), (64, 512), (127, 100), (255, 3)] {
                let fixed = try QSGD(levels: s, bucketSize: d, format: .fixedWidth, seed: 1)
                let elias = try QSGD(levels: s, bucketSize: d, format: .elias, seed: 1)
                let n = t.count
                var levelBits = 0
                while (1 << levelBits) < s + 1 { levelBits += 1 }  // ⌈log₂(s+1)⌉
                let bits: Int = 32 * ((n + d - 1) / d) + n * (1 + levelBits)
                let a = try roundTrip(fixed, t), b = try roundTrip(elias, t)
                #expect(a.bytes.count == (bits + 7) / 8)
                #expect(fixed.fixedMessageBytes(shape: shape) == a.bytes.count)
                // Same seed and key, same draws: the two formats carry the same levels.
                #expect(a.decoded == b.decoded)
                // Every decoded value is sign(v)·scale·ℓ/s with ℓ ∈ {⌊a⌋, ⌊a⌋+1}: at most one level from v.
                for i in 0..<n {
                    let b0 = (i / d) * d, slice = t.scalars[b0 ..< min(n, b0 + d)]
                    let norm: Float = slice.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
                    #expect(abs(a.decoded.scalars[i] - t.scalars[i]) <= norm / Float(s) * 1.0001)
                }
            }
        }
    }

    @Test func eliasStreamIsSmallerThanFixedWidthWhenSparse() throws {
        // s = 1, d = n: E‖Q‖₀ ≤ s(s + √n) ≈ 33 nonzeros of 1024 (§3.1), so the stream is far below 2 bits/element.
        let t = normalTensor([1024], seed: 6)
        let q = try QSGD(levels: 1, bucketSize: 1024, format: .elias)
        let bytes = try q.encode(t, key: .init(rank: 0, step: 0, tensor: 0))
        #expect(bytes.count * 8 < 1024 / 2)
    }

    @Test func zeroNaNAndInfFollowThePolicy() throws {
        for format in [QSGD.Format.elias, .fixedWidth] {
            let q = try QSGD(levels: 8, bucketSize: 4, format: format)
            let zero = Tensor(shape: [10])
            #expect(try roundTrip(q, zero).decoded == zero)
            var partly = normalTensor([12], seed: 1)
            for i in 4..<8 { partly.scalars[i] = 0 }
            #expect(try roundTrip(q, partly).decoded.scalars[4..<8].allSatisfy { $0 == 0 })
            for bad in [Float.nan, .infinity, -.infinity] {
                var t = normalTensor([9], seed: 2)
                t.scalars[5] = bad
                #expect(throws: CompressorError.self) { _ = try q.encode(t, key: .init(rank: 0, step: 0, tensor: 0)) }
            }
        }
        #expect(throws: GradientCompressionError.self) { _ = try QSGD(levels: 0) }
        #expect(throws: GradientCompressionError.self) { _ = try QSGD(levels: 4, bucketSize: 0) }
    }

    /// Buckets of tiny magnitude between normal ones: subnormal values (s/scale overflows fp32
    /// under max-norm, and every square underflows under L2) and normal values below 2⁻¹²² (s/scale
    /// still overflows for s = 64). Every decode is finite and within the bucket's scale, each
    /// coordinate's mean over 2000 encodings is within 5 standard errors of its value (plus half a
    /// subnormal step, the resolution of fp32 there), the normal neighbours too (a field leaking
    /// into them would bias them), and under L2 each bucket's error is within QSGD's variance bound.
    @Test(arguments: [(QSGD.Scaling.l2, QSGD.Format.fixedWidth), (.l2, .elias), (.max, .fixedWidth), (.max, .elias)])
    func tinyBucketsQuantizeLikeAnyOther(scaling: QSGD.Scaling, format: QSGD.Format) throws {
        let d = 16, s = 64, n = 64
        var values = normalTensor([n], seed: 21).scalars
        for j in 0..<d { values[d + j] = Float(j - 8) * 0x1p-146 }        // subnormal, max 2⁻¹⁴³, one zero
        for j in 0..<d { values[2 * d + j] = Float(j % 5 - 2) * 0x1p-125 }  // normal, max 2⁻¹²⁴, zeros
        let t = try Tensor(shape: [n], scalars: values)
        let q = try QSGD(levels: s, bucketSize: d, scaling: scaling, format: format, seed: 3)
        let scales = (0 ..< n / d).map { b -> Double in
            let bucket = values[b * d ..< (b + 1) * d].map { Double($0) }
            return scaling == .l2 ? bucket.reduce(0) { $0 + $1 * $1 }.squareRoot() : bucket.map(abs).max()!
        }
        let trials = 2000
        var sum = [Double](repeating: 0, count: n), sumSq = sum, squaredError = [Double](repeating: 0, count: n / d)
        var nonFinite = 0, beyondScale = 0
        for trial in 0..<trials {
            let key = CompressionKey(rank: 0, step: trial, tensor: 0)
            let decoded = try q.decode(try q.encode(t, key: key), shape: t.shape, key: key).scalars
            for i in 0..<n {
                let x = Double(decoded[i])
                if !x.isFinite { nonFinite += 1; continue }
                if abs(x) > scales[i / d] * (1 + 1e-6) + 0x1p-149 { beyondScale += 1 }
                sum[i] += x; sumSq[i] += x * x
                squaredError[i / d] += (x - Double(values[i])) * (x - Double(values[i])) / Double(trials)
            }
        }
        #expect(nonFinite == 0 && beyondScale == 0, "\(q.name): \(nonFinite) non-finite, \(beyondScale) beyond the scale")
        for i in 0..<n {
            let mean = sum[i] / Double(trials), x = Double(values[i])
            let se = (max(0, sumSq[i] / Double(trials) - mean * mean) / Double(trials - 1)).squareRoot()
            #expect(abs(mean - x) <= 5 * se + 1e-5 * abs(x) + 0x1p-150, "\(q.name) element \(i): mean \(mean) for \(x)")
        }
        if scaling == .l2 {
            for b in 0 ..< n / d {
                let bound = min(Double(d) / Double(s * s), Double(d).squareRoot() / Double(s)) * scales[b] * scales[b]
                #expect(squaredError[b] <= 1.1 * bound + Double(d) * 0x1p-298, "\(q.name) bucket \(b): \(squaredError[b]) > \(bound)")
            }
        }
    }

    @Test func sameKeySameBitsAndDifferentWorkersDrawDifferently() throws {
        let t = normalTensor([300], seed: 8)
        let q = try QSGD(levels: 4, bucketSize: 64, seed: 3)
        let a = try q.encode(t, key: .init(rank: 1, step: 2, tensor: 3))
        #expect(a == (try q.encode(t, key: .init(rank: 1, step: 2, tensor: 3))))
        #expect(a != (try q.encode(t, key: .init(rank: 2, step: 2, tensor: 3))))
    }
}

/// The fast encoder (vectorized levels and uniforms, two lockstep branch-free Elias writers,
/// `BitSink`) against a plain bit-serial encoder of the same format written with `BitWriter` and
/// `EliasGamma.write`, one element at a time.
@Suite struct QSGDReferenceEncoderTests {
    static func reference(_ q: QSGD, _ t: Tensor, key: CompressionKey) -> [UInt8] {
        let v = t.scalars, n = v.count, d = q.bucketSize, buckets = (n + d - 1) / d
        var fixed = BitWriter()
        var scales = [Float]()
        for b in 0..<buckets {
            let slice = Array(v[b * d ..< min(n, (b + 1) * d)])
            let scale = q.scaling == .l2 ? slice.withUnsafeBufferPointer { Vector.norm2($0) } : slice.map { abs($0) }.max()!
            scales.append(scale)
            fixed.write(UInt64(scale.bitPattern), bits: 32)
        }
        var lanes = key.workerLanes(seed: q.seed)
        // Elias: stream k holds buckets b % 2 == k; positions count that stream's elements.
        var streams = [BitWriter(), BitWriter()], nonzeros = [0, 0], last = [-1, -1], streamPosition = [0, 0]
        let s = Float(q.levels)
        for b in 0..<buckets {
            let start = b * d, end = min(n, start + d), k = b % 2
            // A nonzero bucket draws ⌈count/8⌉ steps of the eight lanes, element j taking lane j % 8.
            var u = [Float]()
            if scales[b] != 0 { while u.count < end - start { let step = lanes.next(); for l in 0..<8 { u.append(step[l]) } } }
            for i in start..<end {
                var level: UInt64 = 0
                if scales[b] != 0 {
                    let a = min(abs(v[i]) * (s / scales[b]), s)
                    let lower = a.rounded(.down)
                    level = UInt64(min(u[i - start] < a - lower ? lower + 1 : lower, s))
                }
                let negative: UInt64 = v[i] < 0 ? 1 : 0
                fixed.write(level | negative << UInt64(q.levelBits), bits: 1 + q.levelBits)
                let position = streamPosition[k]
                streamPosition[k] += 1
                if level != 0 {
                    EliasGamma.write(UInt64(position - last[k]), to: &streams[k])
                    streams[k].write(negative, bits: 1)
                    EliasGamma.write(level, to: &streams[k])
                    last[k] = position
                    nonzeros[k] += 1
                }
            }
        }
        if q.format == .fixedWidth { return fixed.finish() }
        let stream0 = streams[0].finish(), stream1 = streams[1].finish()
        var message = [UInt8]()
        for word in [UInt32(nonzeros[0]), UInt32(nonzeros[1]), UInt32(stream0.count)] + scales.map(\.bitPattern) {
            message.appendLittleEndian(word)
        }
        return message + stream0 + stream1
    }

    @Test func fastEncoderWritesTheReferenceBits() throws {
        // Sizes and levels cover: the level table (s ≤ 255) and the computed codes (s > 255), levels
        // at and above 2²³ (the large-float path), zero buckets, a tail bucket, and gaps of more
        // than 2²¹ (codes too long for one 56-bit field).
        var sparse = Tensor(shape: [(1 << 21) + 3000])
        sparse.scalars[5] = 1; sparse.scalars[(1 << 21) + 2500] = -2; sparse.scalars[(1 << 21) + 2999] = 0.5
        let cases: [(Tensor, Int, Int, QSGD.Scaling)] = [
            (normalTensor([5000], seed: 11), 64, 512, .l2), (normalTensor([5000], seed: 12), 1, 100, .l2),
            (normalTensor([777], seed: 13), 1000, 64, .max), (normalTensor([300], seed: 14), 1 << 24, 7, .max),
            (normalTensor([300], seed: 15), (1 << 23) + 5, 300, .max), (sparse, 64, 512, .max), (sparse, 300, 4096, .l2),
        ]
        for (t, s, d, scaling) in cases {
            for format in [QSGD.Format.elias, .fixedWidth] {
                let q = try QSGD(levels: s, bucketSize: d, scaling: scaling, format: format, seed: 3)
                let key = CompressionKey(rank: 1, step: 2, tensor: 0)
                let fast = try q.encode(t, key: key)
                #expect(fast == Self.reference(q, t, key: key), "\(q.name) on \(t.shape)")
                let decoded = try q.decode(fast, shape: t.shape, key: key)
                #expect(decoded.scalars.allSatisfy { $0.isFinite })
            }
        }
    }
}
