import Foundation

/// What every benchmark prints beside its figures: the machine it ran on. Machines of one kind
/// differ (AVX2 and AVX-512 parts both occur, and OpenBLAS picks its kernel from the CPU), so a
/// figure is only comparable with one measured on the same CPU — in practice, in the same run.
struct MachineDescription: Codable, Equatable {
    /// `model name` of /proc/cpuinfo.
    var cpu: String
    /// The vector extensions our kernels and OpenBLAS's choose between, as /proc/cpuinfo lists them.
    var vectorFlags: [String]
    var logicalCores: Int
    /// The 1-minute load average when the report was written: other processes on the cores make
    /// every figure smaller.
    var loadAverage: Double
    /// OPENBLAS_CORETYPE when set (it overrides OpenBLAS's kernel choice).
    var openBLASCoreType: String?

    static let flagsOfInterest = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_bf16"]

    static func current() -> MachineDescription {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        func field(_ name: String) -> String? {
            for line in info.split(separator: "\n") where line.hasPrefix(name) {
                if let colon = line.firstIndex(of: ":") {
                    return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
            }
            return nil
        }
        let flags = Set((field("flags") ?? "").split(separator: " ").map(String.init))
        return MachineDescription(cpu: field("model name") ?? "unknown", vectorFlags: flagsOfInterest.filter(flags.contains),
                                  logicalCores: ProcessInfo.processInfo.activeProcessorCount, loadAverage: loadAverage(),
                                  openBLASCoreType: ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"])
    }

    /// The 1-minute load average (NaN where /proc/loadavg cannot be read).
    static func loadAverage() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8),
              let first = text.split(separator: " ").first, let value = Double(first) else { return .nan }
        return value
    }
}

/// A benchmark's report with the machine added as the key `machine`.
struct BenchmarkReport<Figures: Encodable>: Encodable {
    var figures: Figures
    var machine = MachineDescription.current()

    enum Key: String, CodingKey { case machine }

    func encode(to encoder: Encoder) throws {
        try figures.encode(to: encoder)
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(machine, forKey: .machine)
    }

    /// Prints the report as pretty, key-sorted JSON on standard output.
    static func print(_ figures: Figures) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        Swift.print(String(decoding: try encoder.encode(BenchmarkReport(figures: figures)), as: UTF8.self))
    }
}
