import Testing
import LinearAlgebra
@testable import GradientCompression
import TestSupport

@Suite struct SignTests {
    @Test func signBitsRoundTripWithTheZeroRuleAndFormulaSize() throws {
        for n in [1, 7, 8, 63, 64, 65, 1000] {
            var t = normalTensor([n], seed: UInt64(n))
            t.scalars[0] = 0
            if n > 1 { t.scalars[1] = -0.0 }
            let c = SignCompressor(scaling: .none)
            let (bytes, decoded) = try roundTrip(c, t)
            #expect(bytes.count == (n + 7) / 8)
            for i in 0..<n { #expect(decoded.scalars[i] == (t.scalars[i] < 0 ? -1 : 1)) }
        }
    }

    /// The documented layout, byte by byte: element i at bit i%8 of byte i/8 (so a bug that both
    /// encoder and decoder share, which a round trip cannot see, still fails here), across the
    /// 64-element blocks and a partial tail.
    @Test func signBitsFollowTheDocumentedLayout() throws {
        for n in [5, 64, 130, 1000] {
            let t = normalTensor([n], seed: UInt64(7 * n))
            let bytes = try SignCompressor(scaling: .meanMagnitude).encode(t, key: .init(rank: 0, step: 0, tensor: 0))
            for i in 0..<n { #expect((bytes[4 + i / 8] >> UInt8(i % 8)) & 1 == (t.scalars[i] < 0 ? 1 : 0)) }
            if n % 8 != 0 { #expect(bytes[bytes.count - 1] >> UInt8(n % 8) == 0) }
            let scale = Float(bitPattern: UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24)
            let exact = t.scalars.reduce(0.0) { $0 + Double(abs($1)) } / Double(n)
            #expect(abs(Double(scale) - exact) <= 1e-5 * exact)
        }
    }

    @Test func scaledSignDecodesToTheMeanMagnitudeTimesTheSign() throws {
        let t = normalTensor([3, 50], seed: 5)
        let c = SignCompressor(scaling: .meanMagnitude)
        let (bytes, decoded) = try roundTrip(c, t)
        #expect(bytes.count == 4 + (150 + 7) / 8)  // §10: n + 32 bits per tensor
        let scale = t.scalars.reduce(0.0) { $0 + Double(abs($1)) } / 150
        for i in 0..<150 {
            #expect(abs(Double(decoded.scalars[i]) - (t.scalars[i] < 0 ? -scale : scale)) <= 1e-6 * scale)
        }
        #expect(try roundTrip(c, Tensor(shape: [9])).decoded == Tensor(shape: [9]))
        var bad = t
        bad.scalars[77] = .infinity
        #expect(throws: CompressorError.self) { _ = try c.encode(bad, key: .init(rank: 0, step: 0, tensor: 0)) }
    }
}
