import ArgumentParser
import GradientCompression

/// `powersgd reducers`: every reducer `--reducer` and `--reducers` accept, with its options.
struct ReducersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reducers",
        abstract: "List the reducers and the options each accepts (write them as name:key=value,key=value).")

    func run() {
        for entry in ReducerCatalog.entries {
            let options = ReducerCatalog.acceptedOptions(of: entry.name) ?? []
            print(entry.name)
            print("    \(entry.summary)")
            print("    options: \(options.isEmpty ? "none" : options.joined(separator: ", "))")
        }
        print("\nExample: powersgd train --reducer powersgd:rank=4,warm-start=false (docs/powersgd.md, docs/compressors.md)")
    }
}
