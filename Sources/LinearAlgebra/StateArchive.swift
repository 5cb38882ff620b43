/// The binary checkpoint format: a flat little-endian stream of tagged values.
///
/// Every stateful part of the system (optimizer, reducer, data order,
/// generators) writes itself with `StateWriter` and reads itself back with
/// `StateReader`, in the same order. Floats are stored by bit pattern, so a
/// restored run continues bit for bit. Each value carries a one-byte tag and
/// arrays their length, so a reader fed a truncated or foreign archive throws
/// `StateArchiveError` naming what it expected instead of misreading.
///
/// A file holds `sealed` bytes: the stream followed by its CRC-32C, which `StateReader(unsealing:)`
/// verifies before anything is read, so flipped bits on disk are refused rather than restored.
public struct StateWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    enum Tag: UInt8 { case int = 1, double = 2, floats = 3, tensor = 4, string = 5, bytes = 6, bool = 7 }

    private mutating func raw(_ v: UInt64) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func write(_ value: Int) { bytes.append(Tag.int.rawValue); raw(UInt64(bitPattern: Int64(value))) }
    public mutating func write(_ value: Bool) { bytes.append(Tag.bool.rawValue); bytes.append(value ? 1 : 0) }
    public mutating func write(_ value: Double) { bytes.append(Tag.double.rawValue); raw(value.bitPattern) }

    public mutating func write(_ values: [Float]) {
        bytes.append(Tag.floats.rawValue)
        raw(UInt64(values.count))
        values.withUnsafeBytes { buffer in
            // Float bit patterns in little-endian order (the only byte order Swift targets here).
            bytes.append(contentsOf: buffer)
        }
    }

    public mutating func write(_ tensor: Tensor) {
        bytes.append(Tag.tensor.rawValue)
        raw(UInt64(tensor.shape.count))
        for extent in tensor.shape { raw(UInt64(extent)) }
        write(tensor.scalars)
    }

    public mutating func write(_ value: String) {
        bytes.append(Tag.string.rawValue)
        let utf8 = Array(value.utf8)
        raw(UInt64(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    public mutating func write(_ value: [UInt8]) {
        bytes.append(Tag.bytes.rawValue)
        raw(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    /// The stream followed by its CRC-32C (4 bytes, little-endian): what a file should hold.
    public var sealed: [UInt8] {
        var result = bytes
        withUnsafeBytes(of: CRC32C.checksum(bytes).littleEndian) { result.append(contentsOf: $0) }
        return result
    }
}

/// Reads what `StateWriter` wrote, in the same order.
public struct StateReader: Sendable {
    public let bytes: [UInt8]
    public private(set) var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// A reader of the stream inside `StateWriter.sealed` bytes, after checking their CRC-32C.
    /// - Throws: `StateArchiveError.checksumMismatch` when any byte differs from what was written.
    public init(unsealing sealed: [UInt8]) throws {
        guard sealed.count >= 4 else { throw StateArchiveError.truncated(expected: "checksum", offset: sealed.count) }
        let payload = sealed.count - 4
        var stored: UInt32 = 0
        for i in 0..<4 { stored |= UInt32(sealed[payload + i]) << (8 * UInt32(i)) }
        let computed = CRC32C.checksum(sealed[..<payload])
        guard stored == computed else { throw StateArchiveError.checksumMismatch(stored: stored, computed: computed) }
        self.bytes = Array(sealed[..<payload])
    }

    /// True when every byte has been read.
    public var isAtEnd: Bool { offset == bytes.count }

    private mutating func tag(_ expected: StateWriter.Tag, _ what: String) throws {
        guard offset < bytes.count else { throw StateArchiveError.truncated(expected: what, offset: offset) }
        guard bytes[offset] == expected.rawValue else {
            throw StateArchiveError.unexpectedValue(expected: what, offset: offset)
        }
        offset += 1
    }

    private mutating func raw(_ what: String) throws -> UInt64 {
        guard bytes.count - offset >= 8 else { throw StateArchiveError.truncated(expected: what, offset: offset) }
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
        offset += 8
        return v
    }

    /// A length field, checked against the bytes that remain so a corrupt length
    /// cannot make the reader allocate more than the archive holds.
    private mutating func length(_ what: String, elementSize: Int) throws -> Int {
        let n = try raw(what)
        guard n <= UInt64(bytes.count - offset) / UInt64(max(1, elementSize)) else {
            throw StateArchiveError.truncated(expected: what, offset: offset)
        }
        return Int(n)
    }

    public mutating func readInt() throws -> Int {
        try tag(.int, "integer"); return Int(Int64(bitPattern: try raw("integer")))
    }

    public mutating func readBool() throws -> Bool {
        try tag(.bool, "boolean")
        guard offset < bytes.count else { throw StateArchiveError.truncated(expected: "boolean", offset: offset) }
        defer { offset += 1 }
        return bytes[offset] != 0
    }

    public mutating func readDouble() throws -> Double {
        try tag(.double, "double"); return Double(bitPattern: try raw("double"))
    }

    public mutating func readFloats() throws -> [Float] {
        try tag(.floats, "float array")
        let n = try length("float array", elementSize: 4)
        let result = [Float](unsafeUninitializedCapacity: n) { buffer, count in
            let dst = UnsafeMutableRawBufferPointer(buffer)
            bytes.withUnsafeBytes { src in
                dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[offset ..< offset + 4 * n]))
            }
            count = n
        }
        offset += 4 * n
        return result
    }

    public mutating func readTensor() throws -> Tensor {
        try tag(.tensor, "tensor")
        let dims = try length("tensor shape", elementSize: 8)
        var shape: [Int] = [], elements = 1
        for _ in 0..<dims {
            // An extent beyond Int, or extents whose product is (zeros aside), would trap where a
            // shape's sizes are multiplied; the float count that follows bounds the rest.
            let extent = try raw("tensor extent")
            guard extent <= UInt64(Int.max) else {
                throw StateArchiveError.unexpectedValue(expected: "tensor extent", offset: offset - 8)
            }
            let (product, overflow) = elements.multipliedReportingOverflow(by: max(1, Int(extent)))
            guard !overflow else { throw StateArchiveError.unexpectedValue(expected: "tensor shape", offset: offset - 8) }
            elements = product
            shape.append(Int(extent))
        }
        let scalars = try readFloats()
        do { return try Tensor(shape: shape, scalars: scalars) } catch {
            throw StateArchiveError.unexpectedValue(expected: "tensor of shape \(shape)", offset: offset)
        }
    }

    public mutating func readString() throws -> String {
        try tag(.string, "string")
        let n = try length("string", elementSize: 1)
        defer { offset += n }
        return String(decoding: bytes[offset ..< offset + n], as: UTF8.self)
    }

    public mutating func readBytes() throws -> [UInt8] {
        try tag(.bytes, "byte array")
        let n = try length("byte array", elementSize: 1)
        defer { offset += n }
        return Array(bytes[offset ..< offset + n])
    }

    /// Reads a string and throws unless it equals `expected`: a section marker
    /// that makes a checkpoint written by another reducer or model fail loudly.
    public mutating func expect(_ expected: String) throws {
        let found = try readString()
        guard found == expected else {
            throw StateArchiveError.mismatch(expected: expected, found: found)
        }
    }
}

/// A checkpoint that cannot be read back.
public enum StateArchiveError: Error, Equatable, CustomStringConvertible {
    case truncated(expected: String, offset: Int)
    case unexpectedValue(expected: String, offset: Int)
    case mismatch(expected: String, found: String)
    /// The CRC-32C stored after the stream is not the one of the bytes read.
    case checksumMismatch(stored: UInt32, computed: UInt32)

    public var description: String {
        switch self {
        case let .truncated(what, offset): return "checkpoint ends at byte \(offset) where a \(what) was expected"
        case let .unexpectedValue(what, offset): return "checkpoint holds something else at byte \(offset) where a \(what) was expected"
        case let .mismatch(expected, found): return "checkpoint section is '\(found)', expected '\(expected)' (written by a different configuration?)"
        case let .checksumMismatch(stored, computed):
            return "checkpoint is corrupt: its CRC-32C checksum is " + String(stored, radix: 16)
                + " but its bytes give " + String(computed, radix: 16)
        }
    }
}
