import Foundation

/// Resident memory of a process from Linux's /proc: the current resident set (VmRSS) and its
/// peak (VmHWM), which writing "5" to /proc/PID/clear_refs resets to the current size, so the
/// peak of one phase (a training step, a reduce) can be read on its own.
enum ResidentMemory {
    /// VmRSS of `pid` (this process when nil) in bytes, nil where /proc cannot be read.
    static func currentBytes(pid: Int32? = nil) -> Int? { field("VmRSS", pid: pid) }

    /// VmHWM of `pid` in bytes: the peak resident set since the process started or since the last `resetPeak`.
    static func peakBytes(pid: Int32? = nil) -> Int? { field("VmHWM", pid: pid) }

    /// Resets the peak of `pid` to its current resident set; false where the kernel refuses.
    @discardableResult
    static func resetPeak(pid: Int32? = nil) -> Bool {
        let path = "/proc/\(pid.map(String.init) ?? "self")/clear_refs"
        guard let handle = FileHandle(forWritingAtPath: path) else { return false }
        defer { try? handle.close() }
        return (try? handle.write(contentsOf: Data("5".utf8))) != nil
    }

    /// The resident set before `body` and the peak while it ran (both nil where /proc cannot be
    /// read or the peak cannot be reset).
    static func measure<T>(_ body: () throws -> T) rethrows -> (result: T, before: Int?, peak: Int?) {
        let reset = resetPeak()
        let before = currentBytes()
        let result = try body()
        return (result, before, reset ? peakBytes() : nil)
    }

    static func field(_ name: String, pid: Int32?) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid.map(String.init) ?? "self")/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            let words = line.split { $0 == " " || $0 == "\t" }
            guard words.count == 3, words[2] == "kB", let kilobytes = Int(words[1]) else { return nil }
            return kilobytes * 1024
        }
        return nil
    }
}
