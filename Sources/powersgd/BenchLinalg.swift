import ArgumentParser
import LinearAlgebra

struct BenchLinalg: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "linalg",
        abstract: "Copy bandwidth, sgemm GFLOP/s and tall-skinny products.")
    @Flag(help: "Print JSON.") var json = false
    func run() throws { print("{}") }
}
