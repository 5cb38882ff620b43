import Testing
import Dispatch
@testable import LinearAlgebra

@Suite struct RandomTests {
    /// Known-answer vectors of Philox-4×32-10 from the Random123 distribution (kat_vectors).
    @Test func philoxMatchesRandom123KnownAnswers() {
        #expect(Philox.permute(counter: .zero, key: .zero) == SIMD4(0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8))
        #expect(Philox.permute(counter: SIMD4(repeating: 0xffff_ffff), key: SIMD2(repeating: 0xffff_ffff))
                == SIMD4(0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd))
        #expect(Philox.permute(counter: SIMD4(0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344),
                               key: SIMD2(0xa409_3822, 0x299f_31d0))
                == SIMD4(0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1))
    }

    @Test func identicalKeysGiveIdenticalNumbersAcrossCallsAndThreads() {
        let stream = Philox.stream(7, 3)
        let reference = Philox(seed: 42, stream: stream).normalTensor(shape: [257, 3])
        let results = UnsafeMutableBufferPointerBox(count: 4)
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            results.set(t, Philox(seed: 42, stream: stream).normalTensor(shape: [257, 3]))
        }
        for t in 0..<4 { #expect(results.get(t) == reference) }
        #expect(Philox(seed: 42, stream: Philox.stream(3, 7)).normalTensor(shape: [257, 3]) != reference)
        #expect(Philox(seed: 43, stream: stream).normalTensor(shape: [257, 3]) != reference)
    }

    @Test func prefixOfALongerFillEqualsTheShorterFill() {
        let g = Philox(seed: 1, stream: 2)
        let long = g.normalTensor(shape: [103]).scalars
        let short = g.normalTensor(shape: [37]).scalars
        #expect(Array(long.prefix(37)) == short)
    }

    /// Two streams of N uniforms: their sample correlation has standard error 1/√N under
    /// independence; |ρ| < 5/√N fails by chance with probability ~6e-7.
    @Test func differentStreamsAreUncorrelated() {
        let n = 100_000
        var a = [Float](repeating: 0, count: n), b = a
        a.withUnsafeMutableBufferPointer { Philox(seed: 9, stream: Philox.stream(1, 0)).fillUniform($0) }
        b.withUnsafeMutableBufferPointer { Philox(seed: 9, stream: Philox.stream(1, 1)).fillUniform($0) }
        #expect(abs(correlation(a, b)) < 5 / Double(n).squareRoot())
    }

    /// N = 10⁶ normals: the mean has standard error 1/√N = 0.001 and the variance
    /// √(2/N) ≈ 0.0014; we allow 5 standard errors.
    @Test(arguments: [false, true]) func normalsHaveUnitMoments(sequential: Bool) {
        let n = 1_000_000
        var x = [Float](repeating: 0, count: n)
        if sequential {
            var g = Xoshiro256(seed: 5, stream: 1)
            for i in 0..<n { x[i] = g.nextNormal() }
        } else {
            x.withUnsafeMutableBufferPointer { Philox(seed: 5, stream: 1).fillNormal($0) }
        }
        let mean = x.reduce(0.0) { $0 + Double($1) } / Double(n)
        let variance = x.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(n - 1)
        #expect(abs(mean) < 5 * 0.001)
        #expect(abs(variance - 1) < 5 * (2.0 / Double(n)).squareRoot())
        #expect(x.allSatisfy { $0.isFinite })
    }

    /// Uniforms on [0, 1): mean 1/2 with standard error √(1/12N).
    @Test func uniformsAreInRangeWithTheRightMean() {
        let n = 1_000_001
        var x = [Float](repeating: 0, count: n)
        var g = Xoshiro256(seed: 11)
        x.withUnsafeMutableBufferPointer { g.fillUniform($0) }
        #expect(x.allSatisfy { $0 >= 0 && $0 < 1 })
        let mean = x.reduce(0.0) { $0 + Double($1) } / Double(n)
        #expect(abs(mean - 0.5) < 5 * (1.0 / (12.0 * Double(n))).squareRoot())
        var again = Xoshiro256(seed: 11)
        #expect(again.nextUniform() == Xoshiro256(seed: 11).nextUniformCopy())
    }

    func correlation(_ a: [Float], _ b: [Float]) -> Double {
        let n = Double(a.count)
        let ma = a.reduce(0.0) { $0 + Double($1) } / n, mb = b.reduce(0.0) { $0 + Double($1) } / n
        var sab = 0.0, saa = 0.0, sbb = 0.0
        for i in a.indices {
            let da = Double(a[i]) - ma, db = Double(b[i]) - mb
            sab += da * db; saa += da * da; sbb += db * db
        }
        return sab / (saa * sbb).squareRoot()
    }
}

extension Xoshiro256 {
    func nextUniformCopy() -> Float { var c = self; return c.nextUniform() }
}

/// A fixed array of results written by concurrent iterations, each to its own slot.
final class UnsafeMutableBufferPointerBox: @unchecked Sendable {
    private var slots: [Tensor?]
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ t: Tensor) { slots.withUnsafeMutableBufferPointer { $0[i] = t } }
    func get(_ i: Int) -> Tensor? { slots[i] }
}
