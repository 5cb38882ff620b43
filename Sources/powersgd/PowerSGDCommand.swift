import ArgumentParser
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
        subcommands: [TrainCommand.self, CompareCommand.self, SimulateCommand.self, ReducersCommand.self, Bench.self])

    static func main() {
        let arguments: [String]
        do { arguments = try ConfigurationFile.expand(Array(CommandLine.arguments.dropFirst())) } catch {
            FileHandleStandardError.write("powersgd: error: \(error)\n")
            Glibc.exit(2)
        }
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))  // --help, --version
                Glibc.exit(0)
            }
            FileHandleStandardError.write("powersgd: " + fullMessage(for: error) + "\n")
            // ArgumentParser reports every parse and validation error as EX_USAGE (64); we use 2,
            // the conventional code for command-line usage errors.
            Glibc.exit(code == .validationFailure ? 2 : 1)
        }
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that print JSON, each measured against a limit of this machine.",
        subcommands: [BenchLinalg.self, BenchCollectives.self, BenchData.self, BenchModel.self, BenchCompressors.self, BenchReducers.self])
}

enum FileHandleStandardError {
    static func write(_ text: String) {
        _ = text.withCString { fputs($0, stderr) }
    }
}
