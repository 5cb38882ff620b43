import Testing
import LinearAlgebra
import Collectives
@testable import GradientCompression
import TestSupport

@Suite struct CodecTests {
    @Test func eliasGammaRoundTripsEveryIntegerToAMillionWithTheFormulaLength() throws {
        var writer = BitWriter()
        var expectedBits = 0
        for k in 1...1_000_000 as ClosedRange<UInt64> {
            EliasGamma.write(k, to: &writer)
            let formula = 2 * floorLog2(k) + 1
            #expect(EliasGamma.length(of: k) == formula)
            expectedBits += formula
        }
        #expect(writer.bitCount == expectedBits)
        let bytes = writer.finish()
        #expect(bytes.count == (expectedBits + 7) / 8)
        try bytes.withUnsafeBytes { raw in
            var reader = BitReader(raw, context: "test")
            for k in 1...1_000_000 as ClosedRange<UInt64> {
                let decoded = try EliasGamma.read(from: &reader)
                if decoded != k { Issue.record("decoded \(decoded) for \(k)"); return }
            }
            try reader.expectEnd()
        }
    }

    @Test func eliasGammaRoundTripsRandom64BitValuesMixedWithOtherFields() throws {
        var rng = Xoshiro256(seed: 11)
        let values: [UInt64] = [1, 2, 3, UInt64.max, 1 << 63, (1 << 32) - 1, 1 << 32] + (0..<20_000).map { _ in
            let v = rng.next() >> (rng.next() % 64)  // spread over all lengths
            return max(1, v)
        }
        var writer = BitWriter()
        var bits = 0
        for v in values {
            EliasGamma.write(v, to: &writer)
            writer.write(v & 0x1F, bits: 5)
            bits += 2 * (63 - v.leadingZeroBitCount) + 1 + 5
        }
        #expect(writer.bitCount == bits)
        try writer.finish().withUnsafeBytes { raw in
            var reader = BitReader(raw, context: "test")
            for v in values {
                #expect(try EliasGamma.read(from: &reader) == v)
                #expect(try reader.read(bits: 5) == v & 0x1F)
            }
            try reader.expectEnd()
        }
    }

    /// `BitSink` and `PositionedBits` write only the low `bits` bits of a value: set bits above
    /// the field never reach the fields after it.
    @Test func bitSinksMaskEveryField() throws {
        var rng = Xoshiro256(seed: 5)
        let fields = (0..<2000).map { _ in (value: rng.next(), bits: Int(rng.next() % 57)) }
        let capacity = fields.reduce(0) { $0 + $1.bits } / 8 + 16
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 2 * capacity, alignment: 8)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: 2 * capacity)
        var sink = BitSink(buffer, startingAtByte: 0)
        var positioned = PositionedBits(bit: 8 * capacity)
        for f in fields {
            sink.append(f.value, bits: f.bits)
            positioned.append(f.value, bits: f.bits, buffer)
        }
        for start in [0, capacity] {
            let source = BitSource(UnsafeRawBufferPointer(start: buffer + start, count: capacity), context: "test")
            var p = 0, wrong = 0
            for f in fields {
                let mask: UInt64 = f.bits == 64 ? .max : (1 << UInt64(f.bits)) - 1
                if try source.field(f.bits, at: p, "field") != f.value & mask { wrong += 1 }
                p += f.bits
            }
            #expect(wrong == 0, "\(wrong) of \(fields.count) fields differ (stream at byte \(start))")
        }
    }

    @Test func bitReaderThrowsAtTheEndAndOnLongZeroRuns() throws {
        let zeros = [UInt8](repeating: 0, count: 16)
        zeros.withUnsafeBytes { raw in
            var reader = BitReader(raw, context: "test")
            #expect(throws: GradientCompressionError.self) { _ = try EliasGamma.read(from: &reader) }
        }
        [UInt8]([0xFF]).withUnsafeBytes { raw in
            var reader = BitReader(raw, context: "test")
            #expect(throws: GradientCompressionError.self) { _ = try reader.read(bits: 9) }
        }
    }

    @Test func halfPrecisionRoundsToNearestEven() throws {
        // fp16 against Swift's scalar conversion on awkward values; bf16 against hand-computed ties.
        var values: [Float] = [0, -0, 1, -1, 65504, 65519, 1e-8, 6.1e-5, 3.14159, -2.71828, 0.1]
        values += (0..<1000).map { Float($0) * 0.37 - 150 }
        var half = [UInt16](repeating: 0, count: values.count)
        let finite = values.withUnsafeBufferPointer { HalfWidthFormat.float16.narrow($0, into: &half) }
        #expect(finite)
        for (i, v) in values.enumerated() { #expect(half[i] == Float16(v).bitPattern) }
        // 1 + 2⁻⁸ is halfway between bf16 1 and 1 + 2⁻⁷: ties to even → 1. 1 + 3·2⁻⁸ → 1 + 2⁻⁶ (even).
        #expect(HalfWidthFormat.bfloat16.bits(1 + 0x1p-8) == 0x3F80)
        #expect(HalfWidthFormat.bfloat16.bits(1 + 3 * 0x1p-8) == 0x3F82)
        #expect(HalfWidthFormat.bfloat16.bits(1 + 0x1p-8 + 0x1p-20) == 0x3F81)
        #expect(HalfWidthFormat.bfloat16.bits(-.nan).isNaNPattern)
        let ties: [Float] = (0..<64).map { 1 + Float($0) * 0x1p-8 }
        var b = [UInt16](repeating: 0, count: ties.count)
        _ = ties.withUnsafeBufferPointer { HalfWidthFormat.bfloat16.narrow($0, into: &b) }
        for (i, v) in ties.enumerated() { #expect(b[i] == HalfWidthFormat.bfloat16.bits(v)) }
        #expect(![Float(70000)].withUnsafeBufferPointer { HalfWidthFormat.float16.narrow($0, into: &half) })
    }

    @Test func uniformStreamContinuesXoshiro256sSequence() {
        var reference = Xoshiro256(seed: 9, stream: 4)
        var fast = UniformStream(reference)
        for _ in 0..<1000 { #expect(fast.next() == reference.next()) }
    }

    @Test func fp16KernelsAgreeWithSwiftsFloat16OnEveryPatternAndRandomFloats() {
        for i in 0...0xFFFF {
            let h = UInt16(i)
            let ours = HalfWidthFormat.float16.float(h), reference = Float(Float16(bitPattern: h))
            #expect(ours.bitPattern == reference.bitPattern || (ours.isNaN && reference.isNaN))
        }
        // Random fp32 patterns over every exponent (subnormal results, ties, overflow included).
        var rng = Xoshiro256(seed: 4)
        for _ in 0..<200_000 {
            let x = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
            let ours = HalfWidthFormat.float16.bits(x), reference = Float16(x)
            #expect(ours == reference.bitPattern || (reference.isNaN && Float16(bitPattern: ours).isNaN))
        }
        // Exact ties: 1 + 2⁻¹¹ lies halfway between fp16 1 and 1 + 2⁻¹⁰ → even (1).
        #expect(HalfWidthFormat.float16.bits(1 + 0x1p-11) == 0x3C00)
        #expect(HalfWidthFormat.float16.bits(1 + 3 * 0x1p-11) == 0x3C02)
    }

    @Test(arguments: [HalfPrecisionCompressor.Format.fp16, .bf16])
    func halfPrecisionMessagesAreTwoBytesPerElementAndDecodeToTheRoundedValues(format: HalfPrecisionCompressor.Format) throws {
        let t = normalTensor([37, 5], seed: 3)
        let c = HalfPrecisionCompressor(format)
        let (bytes, decoded) = try roundTrip(c, t)
        #expect(bytes.count == 2 * t.count)
        for i in 0..<t.count {
            let expected = format == .fp16 ? Float(Float16(t.scalars[i])) : Float(bitPattern: UInt32(HalfWidthFormat.bfloat16.bits(t.scalars[i])) << 16)
            #expect(decoded.scalars[i] == expected)
        }
        #expect(throws: CompressorError.self) { _ = try c.encode(try Tensor(shape: [3], scalars: [1, .nan, 2]), key: .init(rank: 0, step: 0, tensor: 0)) }
        if format == .fp16 {
            #expect(throws: CompressorError.self) { _ = try c.encode(try Tensor(shape: [1], scalars: [1e5]), key: .init(rank: 0, step: 0, tensor: 0)) }
        }
    }
}

extension UInt16 {
    var isNaNPattern: Bool { self & 0x7F80 == 0x7F80 && self & 0x7F != 0 }
}

/// ⌊log₂ k⌋ by repeated halving: the oracle for the code length formula.
func floorLog2(_ k: UInt64) -> Int {
    var e = 0, v = k
    while v >= 2 { v /= 2; e += 1 }
    return e
}
