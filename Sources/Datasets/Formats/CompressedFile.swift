import CZlib
import Foundation

/// Reads a whole file, inflating it when it starts with the gzip magic bytes (1f 8b); other
/// files are returned as they are. Uses the system zlib, so `.gz` downloads need no unpacking.
enum CompressedFile {
    static func read(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DatasetError.corrupt(file: path, reason: "cannot be read")
        }
        let bytes = [UInt8](data)
        guard bytes.count >= 2, bytes[0] == 0x1f, bytes[1] == 0x8b else { return bytes }
        return try inflateGzip(bytes, path: path)
    }

    static func inflateGzip(_ input: [UInt8], path: String) throws -> [UInt8] {
        var stream = z_stream()
        // 16 + MAX_WBITS: expect a gzip header and trailer (zlib's documented convention).
        guard inflateInit2_(&stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DatasetError.corrupt(file: path, reason: "zlib could not start inflating")
        }
        defer { inflateEnd(&stream) }
        var output = [UInt8]()
        output.reserveCapacity(input.count * 4)
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var status: Int32 = Z_OK
        try input.withUnsafeBytes { inBuffer in
            stream.next_in = UnsafeMutablePointer(mutating: inBuffer.bindMemory(to: Bytef.self).baseAddress)
            stream.avail_in = uInt(input.count)
            repeat {
                let produced = try chunk.withUnsafeMutableBytes { outBuffer -> Int in
                    stream.next_out = outBuffer.bindMemory(to: Bytef.self).baseAddress
                    stream.avail_out = uInt(outBuffer.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    guard status == Z_OK || status == Z_STREAM_END else {
                        let message = stream.msg.map { String(cString: $0) } ?? "status \(status)"
                        throw DatasetError.corrupt(file: path, reason: "is not a valid gzip stream (\(message))")
                    }
                    return outBuffer.count - Int(stream.avail_out)
                }
                output.append(contentsOf: chunk[0..<produced])
                if status != Z_STREAM_END && stream.avail_in == 0 && produced == 0 {
                    throw DatasetError.corrupt(file: path, reason: "gzip stream is truncated")
                }
            } while status != Z_STREAM_END
        }
        return output
    }
}
