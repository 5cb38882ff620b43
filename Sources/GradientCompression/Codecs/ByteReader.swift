/// Reads byte-aligned little-endian fields (fp32 values, 32-bit integers, raw spans) of a message,
/// every read checked against the end, for the fixed-layout formats (Top-K, fp16, ATOMO).
public struct ByteReader {
    public let base: UnsafeRawBufferPointer
    public private(set) var offset = 0
    /// Names the message in error texts.
    public let context: String

    public init(_ base: UnsafeRawBufferPointer, context: String) {
        self.base = base
        self.context = context
    }

    public var remaining: Int { base.count - offset }

    /// The next `count` bytes; throws if fewer remain.
    public mutating func take(_ count: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= remaining else {
            throw GradientCompressionError.corruptMessage(
                "\(context) message of \(base.count) bytes is too short for \(what()) (\(count) bytes at offset \(offset))")
        }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: base[offset ..< offset + count])
    }

    public mutating func readUInt32(_ what: @autoclosure () -> String) throws -> UInt32 {
        UInt32(littleEndian: try take(4, what()).loadUnaligned(as: UInt32.self))
    }

    public mutating func readFloat(_ what: @autoclosure () -> String) throws -> Float {
        Float(bitPattern: try readUInt32(what()))
    }

    /// Throws unless the whole message was read.
    public func expectEnd() throws {
        guard remaining == 0 else {
            throw GradientCompressionError.corruptMessage(
                "\(context) message has \(remaining) bytes after the last field (\(base.count) bytes in all)")
        }
    }
}

/// Checks a fixed-size message's length before any field is read.
@inlinable
func expectMessageBytes(_ message: UnsafeRawBufferPointer, _ expected: Int, _ context: String, shape: [Int]) throws {
    guard message.count == expected else {
        throw GradientCompressionError.corruptMessage(
            "\(context) message for a tensor of shape \(shape) must be \(expected) bytes, got \(message.count)")
    }
}

extension Array where Element == UInt8 {
    /// Appends the little-endian bytes of a trivial value (a UInt32, a Float).
    @inlinable
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}
