/// Reads the bit fields `BitWriter` wrote, with every read checked against the end of the buffer.
///
/// A decoder handed arbitrary bytes can only get a thrown `GradientCompressionError.corruptMessage`
/// from this reader, never an out-of-bounds read: `window` holds up to 63 valid bits, refilled
/// from whole bytes that exist. Use it inside `bytes.withUnsafeBytes { … }`.
public struct BitReader {
    @usableFromInline let base: UnsafeRawBufferPointer
    /// The next byte not yet loaded into `window`.
    @usableFromInline var bytePosition = 0
    /// Loaded, unread bits (lowest bit first); bits at and above `available` are zero.
    @usableFromInline var window: UInt64 = 0
    @usableFromInline var available = 0
    /// Names the message in error texts, e.g. "QSGD".
    public let context: String

    public init(_ base: UnsafeRawBufferPointer, context: String) {
        self.base = base
        self.context = context
    }

    /// Bits consumed so far.
    @inlinable public var bitPosition: Int { bytePosition &* 8 &- available }

    /// Bits left in the buffer.
    @inlinable public var remainingBits: Int { base.count &* 8 &- bitPosition }

    /// Loads whole bytes until at least 56 bits are available or the buffer ends.
    @inlinable
    mutating func refill() {
        if bytePosition &+ 8 <= base.count {
            let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: bytePosition, as: UInt64.self))
            let taken = (63 &- available) / 8
            window |= word << UInt64(available)
            bytePosition &+= taken
            available &+= taken &* 8
            window &= (1 << UInt64(available)) &- 1  // drop the bytes not counted as loaded
        } else {
            while available <= 55 && bytePosition < base.count {
                window |= UInt64(base[bytePosition]) << UInt64(available)
                bytePosition &+= 1
                available &+= 8
            }
        }
    }

    @usableFromInline
    func truncated(_ what: String) -> GradientCompressionError {
        .corruptMessage("\(context) message of \(base.count) bytes ends at bit \(bitPosition) while reading \(what)")
    }

    /// Reads a field of `bits` bits (0 ≤ bits ≤ 56).
    @inlinable
    public mutating func read(bits: Int, _ what: @autoclosure () -> String = "a field") throws -> UInt64 {
        if available < bits {
            refill()
            guard available >= bits else { throw truncated(what()) }
        }
        let value = window & ((1 << UInt64(bits)) &- 1)
        window >>= UInt64(bits)
        available &-= bits
        return value
    }

    /// Reads a field of up to 64 bits.
    @inlinable
    public mutating func readWide(bits: Int, _ what: @autoclosure () -> String = "a field") throws -> UInt64 {
        if bits <= 56 { return try read(bits: bits, what()) }
        let low = try read(bits: 32, what())
        return low | (try read(bits: bits - 32, what())) << 32
    }

    /// Reads one bit.
    @inlinable
    public mutating func readBit(_ what: @autoclosure () -> String = "a bit") throws -> Bool {
        try read(bits: 1, what()) != 0
    }

    /// Reads a little-endian fp32 written as a 32-bit field.
    @inlinable
    public mutating func readFloat(_ what: @autoclosure () -> String = "a float") throws -> Float {
        Float(bitPattern: UInt32(truncatingIfNeeded: try read(bits: 32, what())))
    }

    /// Throws unless every remaining bit is zero padding of the last byte, so trailing
    /// garbage or a message cut at a byte boundary is reported rather than ignored.
    public mutating func expectEnd() throws {
        let rest = remainingBits
        guard rest < 8 else {
            throw GradientCompressionError.corruptMessage(
                "\(context) message has \(rest) unread bits (\(base.count) bytes) after the last field")
        }
        if rest > 0, try read(bits: rest, "padding") != 0 {
            throw GradientCompressionError.corruptMessage("\(context) message has nonzero padding bits")
        }
    }
}
