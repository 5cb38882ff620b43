import ArgumentParser
import GradientCompression

/// A comma-separated list of reducers from the flag `flag` (`--reducers`): each reducer's
/// specification and display name. Every reducer is built once through the catalog, so an
/// unknown name or option is a usage error that names the flag.
func parseReducerList(_ text: String, flag: String, seed: UInt64) throws -> [(specification: ReducerSpecification, name: String)] {
    do {
        return try ReducerSpecification.parseList(text).map { ($0, try ReducerCatalog.make($0, seed: seed).name) }
    } catch {
        throw ValidationError("\(flag): \(error)")
    }
}
