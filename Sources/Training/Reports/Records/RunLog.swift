import Foundation

/// Reads and writes run logs: JSON lines, one `RunLogLine` per line, UTF-8.
///
/// A log holds one or more runs, each opened by a `"run"` line and followed by its step and
/// evaluation lines. A resumed run appends to its log without a new `"run"` line; when a step
/// number goes back (the checkpoint was older than the last logged step), the reader drops the
/// records the resume redid (`RunRecord.rewind(toStep:)`), so the result is the uninterrupted run.
public enum RunLog {
    /// The line for `line` (no trailing newline): keys sorted, so equal records give equal bytes.
    public static func encode(_ line: RunLogLine) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(line), as: UTF8.self)
    }

    /// The runs in `text`; `path` names the source in errors and warnings.
    ///
    /// A last line without its newline that does not decode is what a writer cut off (a full
    /// disk, a kill) leaves: it is dropped with a warning passed to `warn`. Any other line that
    /// does not decode is an error naming the file and the line.
    public static func parse(_ text: String, path: String = "<log>", warn: (String) -> Void = { _ in }) throws -> [RunRecord] {
        let decoder = JSONDecoder()
        var runs: [RunRecord] = []
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        for (index, rawLine) in lines.enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            let record: RunLogLine
            do { record = try decoder.decode(RunLogLine.self, from: Data(line.utf8)) } catch {
                if index == lines.count - 1 {
                    warn("warning: \(path):\(index + 1): the last line is incomplete (the writer was cut off); ignoring it")
                    break
                }
                throw ReportError.malformedLogLine(path: path, line: index + 1, reason: describe(error))
            }
            if case .run(let settings) = record {
                runs.append(RunRecord(settings: settings))
                continue
            }
            guard !runs.isEmpty else {
                throw ReportError.malformedLogLine(path: path, line: index + 1,
                                                   reason: "a step or evaluation record before any \"run\" record")
            }
            switch record {
            case .step(let step):
                if let last = runs[runs.count - 1].steps.last, step.step <= last.step {
                    runs[runs.count - 1].rewind(toStep: step.step)
                }
                runs[runs.count - 1].steps.append(step)
            case .evaluation(let evaluation):
                runs[runs.count - 1].evaluations.removeAll { $0.step >= evaluation.step }
                runs[runs.count - 1].evaluations.append(evaluation)
            case .run: break
            }
        }
        return runs
    }

    /// Writes a warning of `parse` to standard error.
    public static func warnOnStandardError(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// The runs in the log file at `url` (a torn last line is dropped with a warning to `warn`).
    public static func read(_ url: URL, warn: (String) -> Void = RunLog.warnOnStandardError) throws -> [RunRecord] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ReportError.unreadableLog(path: url.path, reason: error.localizedDescription)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ReportError.unreadableLog(path: url.path, reason: "not UTF-8 text")
        }
        return try parse(text, path: url.path, warn: warn)
    }

    /// All lines of `run`, in log order (settings, then steps and evaluations interleaved by step).
    public static func lines(of run: RunRecord) -> [RunLogLine] {
        var lines: [RunLogLine] = [.run(run.settings)]
        var evaluations = run.evaluations[...]
        for step in run.steps {
            while let next = evaluations.first, next.step <= step.step {
                lines.append(.evaluation(next))
                evaluations = evaluations.dropFirst()
            }
            lines.append(.step(step))
        }
        lines += evaluations.map { .evaluation($0) }
        return lines
    }

    private static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "missing field \"\(key.stringValue)\""
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "field \"\(context.codingPath.map(\.stringValue).joined(separator: "."))\": \(context.debugDescription)"
        case DecodingError.dataCorrupted(let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? "not a JSON object: \(context.debugDescription)" : "field \"\(path)\": \(context.debugDescription)"
        default: return "\(error)"
        }
    }
}

/// Appends `RunLogLine`s to a file, one JSON line each, written through at once (a crash loses
/// at most the line being written).
public final class RunLogWriter {
    private let handle: FileHandle
    public let url: URL

    /// Opens `url` for appending (`append: true`, for a resume) or truncates it. Appending to a
    /// log whose last line was cut off first removes that fragment, so the next line starts on a
    /// line of its own instead of turning the fragment into a corrupt line in the middle.
    public init(url: URL, append: Bool = false) throws {
        self.url = url
        let manager = FileManager.default
        if !append || !manager.fileExists(atPath: url.path) {
            guard manager.createFile(atPath: url.path, contents: nil) else {
                throw ReportError.unreadableLog(path: url.path, reason: "cannot create the file")
            }
        }
        do { handle = try FileHandle(forUpdating: url) } catch {
            throw ReportError.unreadableLog(path: url.path, reason: error.localizedDescription)
        }
        do {
            if append, let data = try handle.readToEnd(), let last = data.last, last != UInt8(ascii: "\n") {
                let kept = data.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? data.startIndex
                try handle.truncate(atOffset: UInt64(kept - data.startIndex))
            }
            try handle.seekToEnd()
        } catch {
            throw ReportError.unreadableLog(path: url.path, reason: error.localizedDescription)
        }
    }

    deinit { try? handle.close() }

    public func write(_ line: RunLogLine) throws {
        try handle.write(contentsOf: Data((try RunLog.encode(line) + "\n").utf8))
    }
}
