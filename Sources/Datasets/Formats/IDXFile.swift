import Foundation

/// The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/): a 4-byte
/// magic `00 00 08 D` (type 0x08 = unsigned byte, D dimensions), D big-endian 32-bit extents,
/// then the bytes in row-major order. Gzip-compressed files are read as well.
public struct IDXFile: Sendable {
    public var dimensions: [Int]
    public var bytes: [UInt8]

    public init(path: String) throws {
        let data = try CompressedFile.read(path)
        guard data.count >= 4 else { throw DatasetError.corrupt(file: path, reason: "is \(data.count) bytes, shorter than an IDX header") }
        guard data[0] == 0, data[1] == 0 else {
            throw DatasetError.corrupt(file: path, reason: String(format: "wrong magic number %02x %02x %02x %02x (an IDX file starts with 00 00 08 nn)",
                                                                  data[0], data[1], data[2], data[3]))
        }
        guard data[2] == 0x08 else {
            throw DatasetError.corrupt(file: path, reason: "element type 0x\(String(data[2], radix: 16)) is not unsigned byte (0x08)")
        }
        let rank = Int(data[3])
        guard (1...4).contains(rank), data.count >= 4 + 4 * rank else {
            throw DatasetError.corrupt(file: path, reason: "header declares \(rank) dimensions but the file is \(data.count) bytes")
        }
        var dims: [Int] = []
        for d in 0..<rank {
            let o = 4 + 4 * d
            dims.append(Int(data[o]) << 24 | Int(data[o + 1]) << 16 | Int(data[o + 2]) << 8 | Int(data[o + 3]))
        }
        let available = data.count - 4 - 4 * rank
        // Checked: four extents of up to 2³² − 1 overflow Int's product.
        var expected = 1
        for extent in dims {
            let (product, overflow) = expected.multipliedReportingOverflow(by: extent)
            guard !overflow else {
                throw DatasetError.corrupt(file: path, reason: "header declares dimensions \(dims), whose product overflows "
                                           + "a 64-bit size; the file holds \(available) bytes of data")
            }
            expected = product
        }
        guard available == expected else {
            throw DatasetError.corrupt(file: path, reason: "header says \(dims) = \(expected) bytes of data, the file holds \(available)"
                                       + (available < expected ? " (truncated)" : ""))
        }
        dimensions = dims
        bytes = Array(data[(4 + 4 * rank)...])
    }
}
