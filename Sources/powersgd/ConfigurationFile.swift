import Foundation
import Yams

/// `--config run.yaml`: a YAML mapping whose keys are the long flag names of the subcommand
/// (`workers: 4`, `reducer: "powersgd:rank=2"`, `nesterov: false`).
///
/// The file is turned into command-line flags placed right after the subcommand names and
/// before the user's own flags; ArgumentParser keeps the last value of a repeated option, so a
/// flag on the command line overrides the file. Values are passed as `--key=value`, so a
/// negative number is a value, not a flag. An unknown key is reported by ArgumentParser as an
/// unknown flag, like a typo on the command line; `annotate` then names the file and the key.
/// `true` becomes `--key`, `false` `--no-key`; a list becomes its elements joined by commas.
enum ConfigurationFile {
    struct Error: Swift.Error, CustomStringConvertible {
        var description: String
    }

    /// One key of the file, as the flag it became.
    struct Entry {
        var key: String
        /// The value as the file writes it.
        var value: String
        /// For a YAML boolean: the flag is a switch (`--key` or `--no-key`).
        var switchValue: Bool?
        var line: Int
        var flag: String
    }

    /// The command line with the file's flags inserted, and where they came from.
    struct Expansion {
        var arguments: [String]
        var path: String?
        var entries: [Entry] = []
        /// The user's own arguments (without `--config`).
        var commandLine: [String] = []

        /// `message` (an error ArgumentParser or a validation reported) with the file and key it
        /// comes from, when it names a flag or value that only the file gave.
        func annotate(_ message: String) -> String {
            guard let path else { return message }
            let given = Set(commandLine.map { String($0.split(separator: "=", maxSplits: 1).first ?? "") })
            for entry in entries where !given.contains(entry.flag) && !given.contains("--no-" + entry.flag.dropFirst(2)) {
                let names = ["'\(entry.flag)", "'\(entry.flag)=", "\(entry.flag) ", "\(entry.flag):", "'\(entry.value)'"]
                if names.contains(where: { message.contains($0) }) || message.hasSuffix(entry.flag) {
                    var lines = message.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                    lines[0] += " (from --config \(path), line \(entry.line): '\(entry.key): \(entry.value)')"
                    return lines.joined(separator: "\n")
                }
            }
            return message
        }
    }

    static func expand(_ arguments: [String]) throws -> Expansion {
        var args = arguments
        var path: String?
        var index = 0
        while index < args.count {
            if args[index] == "--config" {
                guard index + 1 < args.count else { throw Error(description: "--config needs a file path") }
                path = args[index + 1]
                args.removeSubrange(index...index + 1)
            } else if args[index].hasPrefix("--config=") {
                path = String(args[index].dropFirst("--config=".count))
                args.remove(at: index)
            } else {
                index += 1
            }
        }
        guard let path else { return Expansion(arguments: arguments) }
        let entries = try self.entries(fromFile: path)
        let firstFlag = args.firstIndex { $0.hasPrefix("-") } ?? args.count
        let commandLine = Array(args[firstFlag...])
        args.insert(contentsOf: entries.map(flagText), at: firstFlag)
        return Expansion(arguments: args, path: path, entries: entries, commandLine: commandLine)
    }

    private static func flagText(_ entry: Entry) -> String {
        guard let on = entry.switchValue else { return entry.flag + "=" + entry.value }
        return on ? entry.flag : "--no-" + entry.flag.dropFirst(2)
    }

    static func entries(fromFile path: String) throws -> [Entry] {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw Error(description: "--config \(path): is a directory, not a YAML file")
        }
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw Error(description: "--config: cannot read '\(path)': \(error.localizedDescription)")
        }
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw Error(description: "--config: '\(path)' is not valid YAML: \(error)")
        }
        guard let mapping = node?.mapping else {
            throw Error(description: "--config: '\(path)' must be a YAML mapping of flag names to values (e.g. 'workers: 4')")
        }
        var entries: [Entry] = []
        for (keyNode, valueNode) in mapping {
            let line = (keyNode.mark?.line ?? 0)
            guard let key = keyNode.string, !key.isEmpty, !key.hasPrefix("-") else {
                throw Error(description: "--config \(path), line \(line): '\(keyNode.string ?? "\(keyNode)")' is not a flag name")
            }
            let flag = "--" + key.replacingOccurrences(of: "_", with: "-")
            if let previous = entries.first(where: { $0.flag == flag }) {
                throw Error(description: "--config \(path): '\(key)' is given twice (lines \(previous.line) and \(line)); "
                            + "keep one")
            }
            var value: String, switchValue: Bool?
            if let bool = valueNode.bool {
                (value, switchValue) = (valueNode.scalar?.string ?? "\(bool)", bool)
            } else if let scalar = valueNode.scalar {
                value = scalar.string
            } else if let sequence = valueNode.sequence {
                let items = sequence.compactMap { $0.scalar?.string }
                guard items.count == sequence.count else {
                    throw Error(description: "--config \(path), line \(line): '\(key)' must be a list of plain values")
                }
                value = items.joined(separator: ",")
            } else {
                throw Error(description: "--config \(path), line \(line): '\(key)' must be a plain value or a list")
            }
            entries.append(Entry(key: key, value: value, switchValue: switchValue, line: line, flag: flag))
        }
        return entries
    }
}
