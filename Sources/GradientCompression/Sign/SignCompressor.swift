import LinearAlgebra

/// Sign compression: one bit per element, bit = 1 for xᵢ < 0, else 0 (so +0, −0 and positive
/// values all send +1: the zero rule of ALGORITHMS.md §5.2, GRACE's `g ≥ 0 → +1`).
///
/// - `.none`: the message is the ⌈n/8⌉ bytes of bits and decodes to ±1 (signSGD's worker message).
/// - `.meanMagnitude`: scaled sign (EF-signSGD, §5.3): a 4-byte scale ‖x‖₁/n first, then the
///   bits; decodes to (‖x‖₁/n)·sign(x). Use it inside `ErrorFeedback` (§5.3 is EF-SGD).
/// Bits fill 64-bit words lowest bit first, element i at bit i%64 of word i/64, and the words
/// are sent little-endian, truncated to ⌈n/8⌉ bytes. Magnitudes are summed in the same pass as
/// the bits are packed (one read of the input); a NaN/Inf input, or a sum of magnitudes that
/// overflows fp32, throws.
public struct SignCompressor: Compressor {
    public enum Scaling: String, Sendable { case none, meanMagnitude = "scaled" }
    public let scaling: Scaling

    public init(scaling: Scaling) { self.scaling = scaling }

    public var name: String { scaling == .none ? "sign" : "scaled-sign" }

    var headerBytes: Int { scaling == .none ? 0 : 4 }

    public func fixedMessageBytes(shape: [Int]) -> Int? { headerBytes + (Tensor.elementCount(shape) + 7) / 8 }

    /// 2ʲ in lane j.
    @usableFromInline
    static let laneBits = SIMD16<Int32>(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)

    /// Packs sign bits of `values` into `words` (⌈n/64⌉ of them) and returns Σ|xᵢ|.
    @inlinable
    static func packSigns(_ values: UnsafeBufferPointer<Float>, into words: UnsafeMutablePointer<UInt64>) -> Float {
        let n = values.count
        guard let p = values.baseAddress else { return 0 }
        var magnitude = SIMD16<Float>(repeating: 0)
        let laneBits = SignCompressor.laneBits
        var w = 0
        var i = 0
        while i &+ 64 <= n {
            var word: UInt64 = 0
            for part in 0..<4 {
                // 16 sign bits at once: lane j contributes 2ʲ where xⱼ < 0 (a compare and an and), and the
                // lanes' sum is their OR (a bit-by-bit loop measured 2× slower). `x < 0`, not the sign
                // bit, so that −0 sends +1 like +0.
                let v = UnsafeRawPointer(p + (i &+ 16 &* part)).loadUnaligned(as: SIMD16<Float>.self)
                let bits = SIMD16<Int32>(repeating: 0).replacing(with: laneBits, where: v .< 0)
                word |= UInt64(UInt32(bitPattern: bits.wrappedSum())) &<< UInt64(16 &* part)
                // |x| by clearing the sign bit (pointwiseMax(v, −v) is a generic call here).
                magnitude += unsafeBitCast(unsafeBitCast(v, to: SIMD16<UInt32>.self) & 0x7FFF_FFFF, to: SIMD16<Float>.self)
            }
            words[w] = word
            w &+= 1
            i &+= 64
        }
        var tail: Float = 0
        if i < n {
            var word: UInt64 = 0
            for j in i..<n {
                tail += Swift.abs(p[j])
                if p[j] < 0 { word |= 1 << UInt64(j &- i) }
            }
            words[w] = word
        }
        return magnitude.sum() + tail
    }

    public func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey) throws -> [UInt8] {
        let n = values.count
        var words = [UInt64](repeating: 0, count: (n + 63) / 64)
        let total = words.withUnsafeMutableBufferPointer { SignCompressor.packSigns(values, into: $0.baseAddress!) }
        guard total.isFinite else {
            throw CompressorError.nonFiniteInput(method: name, tensor: key.tensor,
                                                 detail: "it holds NaN/Inf (or its magnitudes sum beyond fp32)")
        }
        let signBytes = (n + 7) / 8
        return [UInt8](unsafeUninitializedCapacity: headerBytes + signBytes) { buffer, count in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            if scaling == .meanMagnitude {
                let scale: Float = n == 0 ? 0 : total / Float(n)
                raw.storeBytes(of: scale.bitPattern.littleEndian, as: UInt32.self)
            }
            words.withUnsafeBytes { src in
                UnsafeMutableRawBufferPointer(rebasing: raw[headerBytes...]).copyMemory(from: UnsafeRawBufferPointer(rebasing: src[0 ..< signBytes]))
            }
            count = headerBytes + signBytes
        }
    }

    public func decode(_ message: UnsafeRawBufferPointer, shape: [Int], key: CompressionKey, weight: Float,
                       accumulatingInto output: UnsafeMutableBufferPointer<Float>) throws {
        let n = output.count
        try expectMessageBytes(message, fixedMessageBytes(shape: shape)!, name, shape: shape)
        var scale: Float = 1
        if scaling == .meanMagnitude {
            scale = Float(bitPattern: UInt32(littleEndian: message.loadUnaligned(as: UInt32.self)))
            guard scale.isFinite, scale >= 0 else { throw GradientCompressionError.corruptMessage("\(name) scale is \(scale)") }
        }
        if n % 8 != 0, message[message.count - 1] >> UInt8(n % 8) != 0 {
            throw GradientCompressionError.corruptMessage("\(name) message has nonzero padding bits")
        }
        let plus = weight * scale
        let bits = UnsafeRawBufferPointer(rebasing: message[headerBytes...])
        for byteIndex in 0 ..< bits.count {
            let byte = bits[byteIndex]
            let base = byteIndex &* 8
            for j in 0 ..< Swift.min(8, n &- base) {
                output[base &+ j] += (byte >> UInt8(j)) & 1 != 0 ? -plus : plus
            }
        }
    }
}
