import Foundation
#if canImport(Glibc)
import Glibc
import Collectives
import Training
#endif

/// Writes `data` to `url` (atomically); a failure is a runtime error naming the file.
func writeOutputFile(_ data: Data, to url: URL) throws {
    do { try data.write(to: url, options: .atomic) } catch {
        throw RuntimeError("cannot write \(url.path): \(error.localizedDescription)")
    }
}

/// The files `train` writes while it runs (`--log-file`, `--checkpoint-dir`): checked before
/// training starts, and named with their flag when a write fails later (a full disk).
struct OutputPaths {
    var logFile: String?
    var checkpointDirectory: String?

    /// Checks that each path can be written: the log file can be opened for writing (it is not
    /// touched otherwise) and its directory takes a new file; the checkpoint directory exists
    /// or can be created and takes a new file. A failure names the flag and the path.
    /// `probesLog`: false on MPI ranks other than 0, which do not write the log (and must not
    /// remove a log that rank 0 has just created).
    init(logFile: String?, checkpointDirectory: String?, probesLog: Bool = true) throws {
        self.logFile = logFile
        self.checkpointDirectory = checkpointDirectory
        if let logFile, probesLog {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: logFile, isDirectory: &isDirectory), isDirectory.boolValue {
                throw RuntimeError("--log-file \(logFile): is a directory")
            }
            let existed = FileManager.default.fileExists(atPath: logFile)
            let descriptor = open(logFile, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            guard descriptor >= 0 else { throw RuntimeError("--log-file \(logFile): cannot write the file (\(errnoText()))") }
            close(descriptor)
            if !existed { unlink(logFile) }
            try Self.probe(directory: (logFile as NSString).deletingLastPathComponent, flag: "--log-file", path: logFile)
        }
        if let checkpointDirectory {
            do {
                try FileManager.default.createDirectory(atPath: checkpointDirectory, withIntermediateDirectories: true)
            } catch {
                throw RuntimeError("--checkpoint-dir \(checkpointDirectory): cannot create the directory (\(Self.reason(error)))")
            }
            try Self.probe(directory: checkpointDirectory, flag: "--checkpoint-dir", path: checkpointDirectory)
        }
    }

    /// Writes, syncs and removes a small file in `directory`: fails on a read-only or full file system.
    private static func probe(directory: String, flag: String, path: String) throws {
        let probe = (directory.isEmpty ? "." : directory) + "/.powersgd-write-test-\(UUID().uuidString)"
        let descriptor = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard descriptor >= 0 else { throw RuntimeError("\(flag) \(path): cannot create a file in \(directory.isEmpty ? "." : directory) (\(errnoText()))") }
        defer { unlink(probe) }
        let bytes = [UInt8](repeating: 0x0a, count: 4096)
        let written = write(descriptor, bytes, bytes.count)
        let failure = written == bytes.count && fsync(descriptor) == 0 ? nil : errnoText()
        close(descriptor)
        if let failure { throw RuntimeError("\(flag) \(path): cannot write (\(failure))") }
    }

    /// Runs `body`; a file-system write error from it becomes a runtime error naming the flag and the path.
    func namingWriteFailures<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error where Self.checkpointFileError(error) != nil {
            let (action, path, reason) = Self.checkpointFileError(error)!
            throw RuntimeError("--checkpoint-dir \(checkpointDirectory ?? path): \(action) \(path) (\(reason))")
        } catch let error as NSError where Self.isWriteError(error) {
            let path = (error.userInfo[NSFilePathErrorKey] as? String) ?? (error.userInfo[NSURLErrorKey] as? URL)?.path
            if let path, let directory = checkpointDirectory,
               path.hasPrefix(URL(fileURLWithPath: directory).standardizedFileURL.path) || path.hasPrefix(directory) {
                throw RuntimeError("--checkpoint-dir \(directory): cannot write \(path) (\(Self.reason(error)))")
            }
            // The log is the only file written through a handle, whose errors carry no path.
            if let logFile, path == nil || path == logFile || path == URL(fileURLWithPath: logFile).path {
                throw RuntimeError("--log-file \(logFile): cannot write (\(Self.reason(error)))")
            }
            throw error
        }
    }

    /// A checkpoint file error from the trainer, possibly from inside a worker thread.
    private static func checkpointFileError(_ error: Error) -> (String, String, String)? {
        let underlying = (error as? WorkerError)?.underlying ?? error
        guard case let .checkpointFile(action, path, reason)? = underlying as? TrainingError else { return nil }
        return (action, path, reason)
    }

    /// Foundation's write errors (CocoaError codes 512–767) and raw POSIX errors.
    private static func isWriteError(_ error: NSError) -> Bool {
        error.domain == NSPOSIXErrorDomain || error.domain == NSCocoaErrorDomain && (512..<768).contains(error.code)
    }

    /// The operating system's reason for a file error ("No space left on device").
    static func reason(_ error: Error) -> String {
        let error = error as NSError
        if error.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(error.code))) }
        if let underlying = error.userInfo[NSUnderlyingErrorKey] as? Error {
            let posix = underlying as NSError
            if posix.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(posix.code))) }
        }
        switch CocoaError.Code(rawValue: error.code) {
        case .fileWriteOutOfSpace: return "No space left on device"
        case .fileWriteVolumeReadOnly: return "Read-only file system"
        case .fileWriteNoPermission: return "Permission denied"
        default: return error.localizedDescription
        }
    }
}

private func errnoText() -> String { String(cString: strerror(errno)) }
