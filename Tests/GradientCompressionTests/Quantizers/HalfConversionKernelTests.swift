import Testing
import Collectives
@testable import GradientCompression

/// The F16C kernels (`CHalfConversion`) against the portable per-value conversions
/// (`HalfWidthFormat.float16`, itself tested against Swift's `Float16`): the same bits for every
/// finite value, the same non-finite verdict, and no write past the buffer's end.
@Suite(.enabled(if: HalfPrecision.hardwareConversion, "this CPU has no F16C: the portable path is the only one"))
struct HalfConversionKernelTests {
    /// Float patterns across the whole 32-bit space (a prime stride: every exponent, both signs,
    /// subnormals, NaN/Inf), and every fp16 rounding boundary: each fp16 value's midpoint with
    /// its successor and the floats one ulp either side (ties to even, subnormal and overflow edges).
    static let patterns: [Float] = {
        var values: [Float] = []
        var bits: UInt64 = 0
        while bits < 1 << 32 { values.append(Float(bitPattern: UInt32(bits))); bits += 4_093 }
        for h in 0 ..< 0x7C00 as Range<UInt16> {
            let low = HalfPrecision.float(fromFloat16: h), high = HalfPrecision.float(fromFloat16: h + 1)
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
        let finite = source.withUnsafeBufferPointer { s in buffer.withUnsafeMutableBufferPointer { HalfPrecision.toFloat16(s, $0.baseAddress! + targetOffset) } }
        let target = buffer[targetOffset...]
        var mismatches = 0, anyNonFinite = false
        for (i, v) in source.enumerated() {
            let expected = HalfPrecision.float16(v), got = target[targetOffset + i]
            anyNonFinite = anyNonFinite || HalfWidthFormat.float16.isNonFinite(expected)
            // NaN keeps a NaN pattern; its payload may differ between the two paths (documented).
            if v.isNaN { if !HalfWidthFormat.float16.isNonFinite(got) || got & 0x3FF == 0 { mismatches += 1 } }
            else if got != expected { mismatches += 1 }
        }
        #expect(mismatches == 0)
        #expect(finite == !anyNonFinite)
        #expect(buffer[..<targetOffset].allSatisfy { $0 == 0xABCD } && buffer[(targetOffset + source.count)...].allSatisfy { $0 == 0xABCD })
    }

    @Test func roundThroughAndAddMatchThePortableArithmetic() {
        let source = Self.patterns.filter { !$0.isNaN && Swift.abs($0) < 65_520 } + [1, 2, 3]  // 3 past a multiple of 8
        var rounded = [Float](repeating: 7, count: source.count + 8)
        let finite = source.withUnsafeBufferPointer { HalfPrecision.roundThrough(.float16, $0, &rounded) }
        #expect(finite)
        var halves = [UInt16](repeating: 0, count: source.count)
        for (i, v) in source.enumerated() { halves[i] = HalfPrecision.float16(v) }
        #expect(zip(source.indices, source).allSatisfy { i, _ in rounded[i].bitPattern == HalfPrecision.float(fromFloat16: halves[i]).bitPattern })
        #expect(rounded[source.count...].allSatisfy { $0 == 7 })
        #expect(![Float(1), 70_000].withUnsafeBufferPointer { HalfPrecision.roundThrough(.float16, $0, &rounded) })

        let weight: Float = 0.37
        var sum = (0 ..< source.count + 8).map { Float($0) * 0.5 }
        let before = sum
        halves.withUnsafeBufferPointer { h in
            sum.withUnsafeMutableBufferPointer { HalfPrecision.addFloat16(h.baseAddress!, weight: weight, into: UnsafeMutableBufferPointer(rebasing: $0[..<source.count])) }
        }
        #expect(source.indices.allSatisfy { sum[$0].bitPattern == (before[$0] + weight * HalfPrecision.float(fromFloat16: halves[$0])).bitPattern })
        #expect(sum[source.count...] == before[source.count...])
    }
}
