import ArgumentParser
import LinearAlgebra
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `powersgd` command. Exit codes: 0 on success, 2 for usage errors (a message naming
/// the flag), 1 for runtime failures (a message with the cause).
@main
struct PowerSGDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "powersgd",
        abstract: "Communication-efficient data-parallel training (PowerSGD and its peers).",
        subcommands: [TrainCommand.self, CompareCommand.self, SimulateCommand.self, ReducersCommand.self, PrivacyCommand.self, DPErrorCommand.self,
                      AttackCommand.self, StudyCommand.self, Bench.self, ClusterCommand.self])

    static func main() {
        AllocatorTuning.apply()
        let expansion: ConfigurationFile.Expansion
        do { expansion = try ConfigurationFile.expand(attachingNegativeValues(Array(CommandLine.arguments.dropFirst()))) } catch {
            FileHandleStandardError.write("powersgd: error: \(error)\n")
            Glibc.exit(2)
        }
        do {
            var command = try parseAsRoot(expansion.arguments)
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))  // --help, --version
                Glibc.exit(0)
            }
            FileHandleStandardError.write("powersgd: " + expansion.annotate(fullMessage(for: error)) + "\n")
            // ArgumentParser reports every parse and validation error as EX_USAGE (64); we use 2,
            // the conventional code for command-line usage errors.
            Glibc.exit(code == .validationFailure || (error as? RuntimeError)?.isUsageError == true ? 2 : 1)
        }
    }
}

/// `--momentum -0.5` as `--momentum=-0.5`: ArgumentParser takes a token starting with '-' for a
/// flag and would report the option's value as missing; no flag of this command starts with a
/// digit, so such a token after a long option is its value (which the range checks then judge).
func attachingNegativeValues(_ arguments: [String]) -> [String] {
    var result: [String] = []
    for argument in arguments {
        if let previous = result.last, previous.hasPrefix("--"), previous != "--", !previous.contains("="),
           argument.count > 1, argument.hasPrefix("-"), Double(argument) != nil {
            result[result.count - 1] = previous + "=" + argument
        } else {
            result.append(argument)
        }
    }
    return result
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that print JSON, each measured against a limit of this machine.",
        subcommands: [BenchLinalg.self, BenchCollectives.self, BenchData.self, BenchModel.self, BenchCompressors.self, BenchReducers.self, BenchNetwork.self, BenchDP.self])
}

enum FileHandleStandardError {
    static func write(_ text: String) {
        _ = text.withCString { fputs($0, stderr) }
    }
}
