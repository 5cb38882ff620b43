import Foundation
import Yams

/// `--config run.yaml`: a YAML mapping whose keys are the long flag names of the subcommand
/// (`workers: 4`, `reducer: "powersgd:rank=2"`, `nesterov: false`).
///
/// The file is turned into command-line flags placed right after the subcommand names and
/// before the user's own flags; ArgumentParser keeps the last value of a repeated option, so a
/// flag on the command line overrides the file. An unknown key is reported by ArgumentParser as
/// an unknown flag, like a typo on the command line. `true` becomes `--key`, `false`
/// `--no-key`; a list becomes its elements joined by commas.
enum ConfigurationFile {
    struct Error: Swift.Error, CustomStringConvertible {
        var description: String
    }

    static func expand(_ arguments: [String]) throws -> [String] {
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
        guard let path else { return arguments }
        let flags = try flags(fromFile: path)
        let firstFlag = args.firstIndex { $0.hasPrefix("-") } ?? args.count
        args.insert(contentsOf: flags, at: firstFlag)
        return args
    }

    static func flags(fromFile path: String) throws -> [String] {
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
        var flags: [String] = []
        for (keyNode, valueNode) in mapping {
            guard let key = keyNode.string, !key.isEmpty, !key.hasPrefix("-") else {
                throw Error(description: "--config: '\(path)' has a key that is not a flag name: \(keyNode)")
            }
            let flag = "--" + key.replacingOccurrences(of: "_", with: "-")
            if let bool = valueNode.bool {
                flags.append(bool ? flag : "--no-" + flag.dropFirst(2))
            } else if let scalar = valueNode.scalar {
                flags += [flag, scalar.string]
            } else if let sequence = valueNode.sequence {
                let items = sequence.compactMap { $0.scalar?.string }
                guard items.count == sequence.count else {
                    throw Error(description: "--config: '\(key)' in '\(path)' must be a list of plain values")
                }
                flags += [flag, items.joined(separator: ",")]
            } else {
                throw Error(description: "--config: '\(key)' in '\(path)' must be a plain value or a list")
            }
        }
        return flags
    }
}
