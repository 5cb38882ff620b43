import Testing
@testable import Collectives

/// The F16C kernels (`CHalfConversion`) behind `HalfWidthFormat`'s buffer conversions, against the
/// portable per-value conversions (themselves tested against Swift's `Float16`): the same bits for every
/// finite value, the same non-finite verdict, and no write past the buffer's end.
@Suite(.enabled(if: HalfWidthFormat.float16Hardware, "this CPU has no F16C: the portable path is the only one"))
struct HalfConversionKernelTests {
    /// Float patterns across the whole 32-bit space (a prime stride: every exponent, both signs,
    /// subnormals, NaN/Inf), and every fp16 rounding boundary: each fp16 value's midpoint with
    /// its successor and the floats one ulp either side (ties to even, subnormal and overflow edges).
    static let patterns: [Float] = {
        var values: [Float] = []
        var bits: UInt64 = 0
        while bits < 1 << 32 { values.append(Float(bitPattern: UInt32(bits))); bits += 4_093 }
        for h in 0 ..< 0x7C00 as Range<UInt16> {
            let low = HalfWidthFormat.float16.float(h), high = HalfWidthFormat.float16.float(h + 1)
            let middle = low + (high - low) / 2  // exact: one more bit than fp16 fits in fp32
            for v in [middle, middle.nextDown, middle.nextUp] { values += [v, -v] }
        }
        return values
    }()

    /// Every prefix length's tail (0...7 elements past a multiple of 8) and all the patterns (the
    /// streaming-store path of large buffers), each written at an aligned target and 2 bytes past one.
    @Test(arguments: [0, 1, 7, 8, 9, Int.max], [0, 1])
    func toFloat16MatchesThePortableConversion(prefix: Int, targetOffset: Int) {
        let source = Array(Self.patterns.prefix(prefix))
        var buffer = [UInt16](repeating: 0xABCD, count: source.count + 9)
        let finite = source.withUnsafeBufferPointer { s in buffer.withUnsafeMutableBufferPointer { HalfWidthFormat.float16.narrow(s, into: $0.baseAddress! + targetOffset) } }
        let target = buffer[targetOffset...]
        var mismatches = 0, anyNonFinite = false
        for (i, v) in source.enumerated() {
            let expected = HalfWidthFormat.float16.bits(v), got = target[targetOffset + i]
            anyNonFinite = anyNonFinite || HalfWidthFormat.float16.isNonFinite(expected)
            // NaN keeps a NaN pattern; its payload may differ between the two paths (documented).
            if v.isNaN { if !HalfWidthFormat.float16.isNonFinite(got) || got & 0x3FF == 0 { mismatches += 1 } }
            else if got != expected { mismatches += 1 }
        }
        #expect(mismatches == 0)
        #expect(finite == !anyNonFinite)
        #expect(buffer[..<targetOffset].allSatisfy { $0 == 0xABCD } && buffer[(targetOffset + source.count)...].allSatisfy { $0 == 0xABCD })
    }

    @Test func roundWidenAndAddMatchThePortableArithmetic() {
        let source = Self.patterns.filter { !$0.isNaN && Swift.abs($0) < 65_520 } + [1, 2, 3]  // 3 past a multiple of 8
        var rounded = [Float](repeating: 7, count: source.count + 8)
        let finite = source.withUnsafeBufferPointer { HalfWidthFormat.float16.round($0, into: &rounded) }
        #expect(finite)
        var halves = [UInt16](repeating: 0, count: source.count)
        for (i, v) in source.enumerated() { halves[i] = HalfWidthFormat.float16.bits(v) }
        #expect(zip(source.indices, source).allSatisfy { i, _ in rounded[i].bitPattern == HalfWidthFormat.float16.float(halves[i]).bitPattern })
        #expect(rounded[source.count...].allSatisfy { $0 == 7 })
        var pair: [Float] = [0, 0]
        #expect(![Float(1), 70_000].withUnsafeBufferPointer { HalfWidthFormat.float16.round($0, into: &pair) })

        var widened = [Float](repeating: 7, count: source.count + 8)
        halves.withUnsafeBufferPointer { h in
            widened.withUnsafeMutableBufferPointer { HalfWidthFormat.float16.widen(h.baseAddress!, into: UnsafeMutableBufferPointer(rebasing: $0[..<source.count])) }
        }
        #expect(source.indices.allSatisfy { widened[$0].bitPattern == rounded[$0].bitPattern })
        #expect(widened[source.count...].allSatisfy { $0 == 7 })

        let weight: Float = 0.37
        var sum = (0 ..< source.count + 8).map { Float($0) * 0.5 }
        let before = sum
        halves.withUnsafeBufferPointer { h in
            sum.withUnsafeMutableBufferPointer { HalfWidthFormat.float16.add(h.baseAddress!, weight: weight, into: UnsafeMutableBufferPointer(rebasing: $0[..<source.count])) }
        }
        #expect(source.indices.allSatisfy { sum[$0].bitPattern == (before[$0] + weight * HalfWidthFormat.float16.float(halves[$0])).bitPattern })
        #expect(sum[source.count...] == before[source.count...])
    }
}

@Suite struct HalfWidthBufferScanTests {
    /// `holdsNonFinite` finds one Inf or NaN pattern wherever it is (in the 16-wide part or the
    /// tail) and passes every finite pattern, for both formats.
    @Test(arguments: HalfWidthFormat.allCases)
    func holdsNonFiniteFindsOneBadPatternAnywhere(format: HalfWidthFormat) {
        let exponent: UInt16 = format == .float16 ? 0x7C00 : 0x7F80
        let finite = (0 ... 0xFFFF).map { UInt16($0) }.filter { $0 & exponent != exponent }
        #expect(!finite.withUnsafeBytes { format.holdsNonFinite($0) })
        for count in [1, 15, 16, 17, 40] {
            for position in [0, count / 2, count - 1] {
                for bad in [exponent, exponent | 1, exponent | 0x8000] {  // Inf, NaN, −Inf
                    var patterns = [UInt16](repeating: 0x3C00, count: count)
                    patterns[position] = bad
                    #expect(patterns.withUnsafeBytes { format.holdsNonFinite($0) })
                }
            }
        }
    }
}
