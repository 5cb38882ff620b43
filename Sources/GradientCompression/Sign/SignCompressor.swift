import LinearAlgebra
#if arch(x86_64)
import _Builtin_intrinsics.intel
#endif

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

    /// `scaled-sign(feedback=none)`: the catalog's `scaled-sign` runs with error feedback unless told
    /// otherwise, so the bare exchange says it has none (`ErrorFeedback` names its own mode).
    public var name: String { scaling == .none ? "sign" : "scaled-sign(feedback=none)" }

    var headerBytes: Int { scaling == .none ? 0 : 4 }

    public func fixedMessageBytes(shape: [Int]) -> Int? { headerBytes + (Tensor.elementCount(shape) + 7) / 8 }

    /// Writes the sign bits of `values` to `bytes` (⌈n/8⌉ of them, element i at bit i%8 of byte
    /// i/8) and returns Σ|xᵢ|, in one read of the input.
    ///
    /// The bits are `x < 0`, not the sign bit, so that −0 sends +1 like +0. On x86-64 four floats
    /// give four bits with one compare and one `movmskps` (SSE, the Swift baseline); 64 elements make
    /// one little-endian word. The magnitudes are summed in four independent accumulators so that
    /// the adds' latency does not serialize the loop (one accumulator measured ~1.5× slower).
    static func packSigns(_ values: UnsafeBufferPointer<Float>, into bytes: UnsafeMutableRawPointer) -> Float {
        let n = values.count
        guard let p = values.baseAddress else { return 0 }
        var m0 = SIMD4<Float>(), m1 = SIMD4<Float>(), m2 = SIMD4<Float>(), m3 = SIMD4<Float>()
        var i = 0
        while i &+ 64 <= n {
            var word: UInt64 = 0
            var part = 0
            while part < 64 {
                let q = UnsafeRawPointer(p + (i &+ part))
                let v0 = q.loadUnaligned(as: SIMD4<Float>.self), v1 = q.loadUnaligned(fromByteOffset: 16, as: SIMD4<Float>.self)
                let v2 = q.loadUnaligned(fromByteOffset: 32, as: SIMD4<Float>.self), v3 = q.loadUnaligned(fromByteOffset: 48, as: SIMD4<Float>.self)
                let nibbles = negativeLanes(v0) | negativeLanes(v1) &<< 4 | negativeLanes(v2) &<< 8 | negativeLanes(v3) &<< 12
                word |= nibbles &<< UInt64(truncatingIfNeeded: part)
                m0 += magnitudes(v0); m1 += magnitudes(v1); m2 += magnitudes(v2); m3 += magnitudes(v3)
                part &+= 16
            }
            (bytes + i &>> 3).storeBytes(of: word.littleEndian, as: UInt64.self)
            i &+= 64
        }
        var tail: Float = 0
        var word: UInt64 = 0
        for j in i..<n {
            tail += Swift.abs(p[j])
            if p[j] < 0 { word |= 1 &<< UInt64(j &- i) }
        }
        withUnsafeBytes(of: word.littleEndian) { (bytes + i &>> 3).copyMemory(from: $0.baseAddress!, byteCount: (n &- i &+ 7) &>> 3) }
        return ((m0 + m1) + (m2 + m3)).sum() + tail
    }

    /// |v| by clearing the sign bits (`pointwiseMax(v, −v)` is a generic call here).
    @inline(__always)
    static func magnitudes(_ v: SIMD4<Float>) -> SIMD4<Float> {
        unsafeBitCast(unsafeBitCast(v, to: SIMD4<UInt32>.self) & 0x7FFF_FFFF, to: SIMD4<Float>.self)
    }

    /// Bit j set where lane j of `v` is < 0.
    @inline(__always)
    static func negativeLanes(_ v: SIMD4<Float>) -> UInt64 {
        #if arch(x86_64)
        UInt64(truncatingIfNeeded: _mm_movemask_ps(_mm_cmplt_ps(v, SIMD4<Float>())))
        #else
        // The lanes' union by hand, not `wrappedSum()` (see `laneUnion`).
        let bits = SIMD4<UInt32>(repeating: 0).replacing(with: SIMD4<UInt32>(1, 2, 4, 8), where: v .< 0)
        return UInt64((bits[0] | bits[1]) | (bits[2] | bits[3]))
        #endif
    }

    public func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], key: CompressionKey) throws -> [UInt8] {
        let n = values.count
        var total: Float = 0
        let message = [UInt8](unsafeUninitializedCapacity: headerBytes + (n + 7) / 8) { buffer, count in
            let raw = UnsafeMutableRawPointer(buffer.baseAddress!)
            total = SignCompressor.packSigns(values, into: raw + headerBytes)
            if scaling == .meanMagnitude {
                let scale: Float = n == 0 ? 0 : total / Float(n)
                raw.storeBytes(of: scale.bitPattern.littleEndian, as: UInt32.self)
            }
            count = headerBytes + (n + 7) / 8
        }
        guard total.isFinite else {
            throw CompressorError.nonFiniteInput(method: name, tensor: key.tensor,
                                                 detail: "it holds NaN/Inf (or its magnitudes sum beyond fp32)")
        }
        return message
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
        guard let out = output.baseAddress else { return }
        let bits = message.baseAddress! + headerBytes
        // Eight elements per byte: lane j's sign bit is flipped where bit j is set (a compare of
        // byte & 2ʲ with 2ʲ, then an and with the sign bit: branch-free, vectorized).
        let laneBits = SIMD8<UInt32>(1, 2, 4, 8, 16, 32, 64, 128)
        let plusBits = SIMD8<UInt32>(repeating: plus.bitPattern)
        var i = 0
        while i &+ 8 <= n {
            let byte = SIMD8<UInt32>(repeating: UInt32(bits.load(fromByteOffset: i &>> 3, as: UInt8.self)))
            let negative = SIMD8<UInt32>(repeating: 0).replacing(with: 0x8000_0000, where: byte & laneBits .== laneBits)
            let target = UnsafeMutableRawPointer(out + i)
            let sum = target.loadUnaligned(as: SIMD8<Float>.self) + unsafeBitCast(plusBits ^ negative, to: SIMD8<Float>.self)
            target.storeBytes(of: sum, as: SIMD8<Float>.self)
            i &+= 8
        }
        if i < n {
            let byte = bits.load(fromByteOffset: i &>> 3, as: UInt8.self)
            for j in i..<n { out[j] += (byte >> UInt8(j &- i)) & 1 != 0 ? -plus : plus }
        }
    }
}

extension SignCompressor {
    static let scaledSignCatalogEntry = ReducerCatalog.Entry(
        name: "scaled-sign", summary: "EF-signSGD: the sign of each value scaled by the mean magnitude, with error feedback, all-gathered",
        options: [.feedback(default: "ef")]) { o, _ in
        try ErrorFeedback.wrapping(AllGatherReducer(SignCompressor(scaling: .meanMagnitude)), try o.choice("feedback"))
    }
}
