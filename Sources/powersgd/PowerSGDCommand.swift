import ArgumentParser

@main
struct PowerSGDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "powersgd",
        abstract: "Communication-efficient data-parallel training (PowerSGD and its peers).",
        subcommands: [Bench.self])
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that print JSON, each measured against a limit of this machine.",
        subcommands: [BenchLinalg.self])
}
