import Foundation

/// Writes `data` to `url` (atomically); a failure is a runtime error naming the file.
func writeOutputFile(_ data: Data, to url: URL) throws {
    do { try data.write(to: url, options: .atomic) } catch {
        throw RuntimeError("cannot write \(url.path): \(error.localizedDescription)")
    }
}
