import ArgumentParser
import GradientCompression

/// `powersgd reducers`: every reducer `--reducer` and `--reducers` accept, with its options.
struct ReducersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reducers",
        abstract: "List the reducers and the options each accepts (write them as name:key=value,key=value).")

    @Flag(help: "Print the options table of docs/compressors.md instead.")
    var markdown = false

    func run() {
        if markdown {
            print(ReducerCatalog.optionsTable, terminator: "")
            return
        }
        for entry in ReducerCatalog.entries {
            print(entry.name)
            print("    \(entry.summary)")
            print("    options: \(entry.options.isEmpty ? "none" : entry.options.map(\.listing).joined(separator: ", "))")
        }
        print("\nExample: powersgd train --reducer powersgd:rank=4,warm-start=false (docs/powersgd.md, docs/compressors.md)")
    }
}
