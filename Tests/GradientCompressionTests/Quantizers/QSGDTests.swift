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

/// The fast coders (vectorized levels and uniforms, lockstep Elias writers, the C decoder)
/// against `QSGDReference`, which writes and reads the same layout element by element.
@Suite struct QSGDReferenceTests {
    /// Sizes and levels cover: the level table (s ≤ 255) and the computed codes (s > 255), levels
    /// at and above 2²³ (the large-float path), zero and tiny buckets, a tail bucket, and gaps of
    /// more than 2²¹ (codes too long for one 56-bit field).
    static let cases: [(Tensor, Int, Int, QSGD.Scaling)] = {
        var sparse = Tensor(shape: [(1 << 21) + 3000])
        sparse.scalars[5] = 1; sparse.scalars[(1 << 21) + 2500] = -2; sparse.scalars[(1 << 21) + 2999] = 0.5
        var tiny = normalTensor([4100], seed: 16)
        for i in 512 ..< 1024 { tiny.scalars[i] *= 0x1p-140 }
        for i in 1024 ..< 1536 { tiny.scalars[i] = 0 }
        return [(normalTensor([5000], seed: 11), 64, 512, .l2), (normalTensor([5000], seed: 12), 1, 100, .l2),
                (normalTensor([777], seed: 13), 1000, 64, .max), (normalTensor([300], seed: 14), 1 << 24, 7, .max),
                (normalTensor([300], seed: 15), (1 << 23) + 5, 300, .max), (sparse, 64, 512, .max), (sparse, 300, 4096, .l2),
                (tiny, 64, 512, .l2), (tiny, 5, 512, .max), (normalTensor([20_011], seed: 17), 64, 1, .l2)]
    }()

    @Test func fastEncoderWritesTheReferenceBits() throws {
        for (t, s, d, scaling) in Self.cases {
            for format in [QSGD.Format.elias, .fixedWidth] {
                let q = try QSGD(levels: s, bucketSize: d, scaling: scaling, format: format, seed: 3)
                let key = CompressionKey(rank: 1, step: 2, tensor: 0)
                let expected = try QSGDReference(q: q).encode(t, key: key)
                #expect(try q.encode(t, key: key) == expected, "\(q.name) on \(t.shape)")
                if format == .elias {
                    let portable = try t.withUnsafeBufferPointer { try q.encodeElias($0, key: key, kernel: .portable) }
                    #expect(portable == expected, "\(q.name) on \(t.shape), portable path")
                }
            }
        }
    }

    /// Decoding adds weight × the message to what the output holds, bit for bit as the reference.
    @Test func fastDecoderAddsTheReferenceSums() throws {
        for (t, s, d, scaling) in Self.cases {
            for format in [QSGD.Format.elias, .fixedWidth] {
                let q = try QSGD(levels: s, bucketSize: d, scaling: scaling, format: format, seed: 3)
                let key = CompressionKey(rank: 1, step: 2, tensor: 0)
                let message = try q.encode(t, key: key)
                var earlier = normalTensor(t.shape, seed: 5).scalars
                for i in stride(from: 0, to: earlier.count, by: 7) { earlier[i] = i % 2 == 0 ? 0 : -0.0 }
                let expected = try QSGDReference(q: q).decode(message, weight: 0.5, adding: earlier)
                var out = earlier
                try message.withUnsafeBytes { m in
                    try out.withUnsafeMutableBufferPointer { try q.decode(m, shape: t.shape, key: key, weight: 0.5, accumulatingInto: $0) }
                }
                #expect(out.map(\.bitPattern) == expected.map(\.bitPattern), "\(q.name) on \(t.shape)")
                // Not vacuous: the message moved the sums.
                #expect(expected.map(\.bitPattern) != earlier.map(\.bitPattern))
            }
        }
    }

    /// Mutated, truncated and extended messages: the fast decoder throws exactly when the
    /// reference does, and otherwise adds the same values.
    @Test(arguments: [(64, 16, QSGD.Scaling.l2, QSGD.Format.elias), (1, 8, .max, .elias), (300, 32, .l2, .elias),
                      (5, 16, .max, .fixedWidth)])
    func fastDecoderRejectsWhatTheReferenceRejects(levels: Int, bucket: Int, scaling: QSGD.Scaling, format: QSGD.Format) throws {
        let q = try QSGD(levels: levels, bucketSize: bucket, scaling: scaling, format: format, seed: 2)
        var t = normalTensor([12, 10], seed: 3)
        for i in 40 ..< 48 { t.scalars[i] = 0 }
        let key = CompressionKey(rank: 0, step: 0, tensor: 0)
        let earlier = normalTensor(t.shape, seed: 23).scalars
        var agreedThrows = 0, agreedDecodes = 0
        for m in mutations(of: try q.encode(t, key: key), count: 3000, seed: 29) {
            let expected = try? QSGDReference(q: q).decode(m, weight: 0.5, adding: earlier)
            var out = earlier
            let decoded = (try? m.withUnsafeBytes { bytes in
                try out.withUnsafeMutableBufferPointer { try q.decode(bytes, shape: t.shape, key: key, weight: 0.5, accumulatingInto: $0) }
            }) != nil
            #expect(decoded == (expected != nil), "\(q.name): fast \(decoded ? "decoded" : "threw"), reference the other way")
            if let expected, decoded {
                #expect(out.map(\.bitPattern) == expected.map(\.bitPattern), "\(q.name): a decoded mutation differs")
                agreedDecodes += 1
            } else if !decoded && expected == nil {
                agreedThrows += 1
            }
        }
        #expect(agreedThrows > 100 && agreedDecodes > 100, "\(q.name): \(agreedThrows) throws, \(agreedDecodes) decodes")
    }
}
