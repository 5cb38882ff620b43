import Testing
@testable import LinearAlgebra

@Suite struct VectorAndArchiveTests {
    @Test(arguments: [0, 1, 15, 16, 33, 1000, 4099])
    func reductionsMatchDoubleReference(count n: Int) {
        let x = Philox(seed: 1, stream: UInt64(n)).normalTensor(shape: [n]).scalars
        let y = Philox(seed: 2, stream: UInt64(n)).normalTensor(shape: [n]).scalars
        let dot = x.withUnsafeBufferPointer { px in y.withUnsafeBufferPointer { Vector.dot(px, $0) } }
        let sum = x.withUnsafeBufferPointer { Vector.sum($0) }
        let l1 = x.withUnsafeBufferPointer { Vector.norm1($0) }
        let l2 = x.withUnsafeBufferPointer { Vector.norm2($0) }
        let linf = x.withUnsafeBufferPointer { Vector.normInfinity($0) }
        let tol = 1e-5 * Double(max(n, 1))
        #expect(abs(Double(dot) - zip(x, y).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }) < tol)
        #expect(abs(Double(sum) - x.reduce(0.0) { $0 + Double($1) }) < tol)
        #expect(abs(Double(l1) - x.reduce(0.0) { $0 + abs(Double($1)) }) < tol)
        #expect(abs(Double(l2) - x.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()) < tol)
        #expect(linf == (x.map { abs($0) }.max() ?? 0))
    }

    @Test func elementwiseUpdates() {
        var y: [Float] = [1, 2, 3], z: [Float] = [0, 0, 0]
        let x: [Float] = [10, 20, 30]
        x.withUnsafeBufferPointer { px in y.withUnsafeMutableBufferPointer { Vector.axpy(0.5, px, $0) } }
        #expect(y == [6, 12, 18])
        x.withUnsafeBufferPointer { px in y.withUnsafeBufferPointer { py in z.withUnsafeMutableBufferPointer {
            Vector.difference(px, py, into: $0) } } }
        #expect(z == [4, 8, 12])
        z.withUnsafeMutableBufferPointer { Vector.scale($0, by: 0.25) }
        #expect(z == [1, 2, 3])
        var nan: [Float] = [1, .nan, 2]
        #expect(nan.withUnsafeMutableBufferPointer { Vector.normInfinity(UnsafeBufferPointer($0)) }.isNaN)
    }

    @Test func archiveRoundTripsBitForBit() throws {
        var w = StateWriter()
        let t = Philox(seed: 3).normalTensor(shape: [2, 3, 4])
        w.write("section"); w.write(-7); w.write(true); w.write(Double.pi); w.write([Float.nan, -0.0, 1e-40])
        w.write(t); w.write([UInt8](arrayLiteral: 1, 2, 3))
        var r = StateReader(w.bytes)
        try r.expect("section")
        #expect(try r.readInt() == -7)
        #expect(try r.readBool())
        #expect(try r.readDouble() == .pi)
        let f = try r.readFloats()
        #expect(f[0].isNaN && f[1].bitPattern == (-0.0 as Float).bitPattern && f[2] == 1e-40)
        #expect(try r.readTensor() == t)
        #expect(try r.readBytes() == [1, 2, 3])
        #expect(r.isAtEnd)
    }

    /// Every truncation of a valid archive throws instead of misreading or trapping, and a
    /// corrupt length cannot make the reader allocate more than the archive holds.
    @Test func truncatedOrCorruptArchivesThrow() {
        var w = StateWriter()
        w.write("model"); w.write(Philox(seed: 4).normalTensor(shape: [5, 5])); w.write(3)
        for cut in 0..<w.bytes.count {
            var r = StateReader(Array(w.bytes.prefix(cut)))
            #expect(throws: StateArchiveError.self) {
                try r.expect("model"); _ = try r.readTensor(); _ = try r.readInt()
            }
        }
        var huge = StateWriter(); huge.write([Float](repeating: 1, count: 4))
        var bytes = huge.bytes
        bytes[8] = 0x7f  // length field's top byte → an absurd count
        var r = StateReader(bytes)
        #expect(throws: StateArchiveError.self) { _ = try r.readFloats() }
        var wrong = StateReader(w.bytes)
        #expect(throws: StateArchiveError.mismatch(expected: "optimizer", found: "model")) { try wrong.expect("optimizer") }
    }
}

@Suite struct NormInfinityTests {
    @Test func largestMagnitudeInfinityNaNAndSignedZero() {
        func linf(_ x: [Float]) -> Float { x.withUnsafeBufferPointer { Vector.normInfinity($0) } }
        var x = (0..<1000).map { Float($0 % 37) - 18 }
        #expect(linf(x) == 18)
        x[517] = -300  // in the vector part, negative
        #expect(linf(x) == 300)
        x[999] = 301   // in the scalar tail
        #expect(linf(x) == 301)
        x[40] = -.infinity
        #expect(linf(x) == .infinity)
        x[41] = .nan
        #expect(linf(x).isNaN)
        #expect(linf([-0.0, -0.0]) == 0)
        #expect(linf([]) == 0)
        #expect(linf((0..<33).map { _ in Float.greatestFiniteMagnitude } + [.nan]).isNaN)
    }
}

@Suite struct SealedArchiveTests {
    /// The standard check value of CRC-32C, on both the eight-byte and the byte-wise path.
    @Test func crc32cMatchesTheStandardCheckValues() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xff, count: 32)) == 0x62A8_AB43)
    }

    /// Sealed bytes read back; any flipped bit, a truncation or an extension is refused.
    @Test func aSealedArchiveRefusesAnyChange() throws {
        var w = StateWriter()
        w.write("model"); w.write(Philox(seed: 4).normalTensor(shape: [5, 5])); w.write(3)
        let sealed = w.sealed
        var r = try StateReader(unsealing: sealed)
        try r.expect("model"); _ = try r.readTensor(); #expect(try r.readInt() == 3); #expect(r.isAtEnd)
        for i in 0..<sealed.count {
            for bit in [0, 3, 7] {
                var m = sealed
                m[i] ^= 1 << bit
                #expect(throws: StateArchiveError.self) { _ = try StateReader(unsealing: m) }
            }
        }
        #expect(throws: StateArchiveError.self) { _ = try StateReader(unsealing: Array(sealed.dropLast())) }
        #expect(throws: StateArchiveError.self) { _ = try StateReader(unsealing: sealed + [0]) }
        #expect(throws: StateArchiveError.self) { _ = try StateReader(unsealing: [1, 2]) }
    }

    /// Extents beyond Int, or whose product overflows, throw instead of trapping.
    @Test func tensorExtentsThatOverflowThrow() {
        func archive(_ extents: [UInt64]) -> [UInt8] {
            var bytes: [UInt8] = [4]  // the tensor tag
            for v in [UInt64(extents.count)] + extents { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
            var floats = StateWriter(); floats.write([Float](repeating: 0, count: 2))
            return bytes + floats.bytes
        }
        for extents: [UInt64] in [[1 << 63, 1], [UInt64.max], [1 << 40, 1 << 40], [0, 1 << 62, 1 << 62]] {
            var r = StateReader(archive(extents))
            #expect(throws: StateArchiveError.self, "\(extents)") { _ = try r.readTensor() }
        }
        var fine = StateReader(archive([2, 1]))
        #expect((try? fine.readTensor())?.shape == [2, 1])
    }
}

/// The last-level cache size that decides PowerSGD's streamed output stores.
@Suite struct CacheSizeTests {
    @Test func sysfsSizesParse() {
        #expect(CacheSize.parseSize("32768K") == 32 << 20)
        #expect(CacheSize.parseSize("1M") == 1 << 20)
        #expect(CacheSize.parseSize("512") == 512)
        #expect(CacheSize.parseSize("fast") == nil)
        #expect(CacheSize.parseSize("") == nil)
    }
}
